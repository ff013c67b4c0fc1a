"""Latent Explorer tasks on a tiny VAE: map + decode, strips as GIFs, breeding lineage, anomalies."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.core.jobs import Job, TaskContext
from studio.core.model_cache import ModelCache
from studio.engine.latent import maths as latent
from studio.engine.latent import tasks as latent_tasks
from studio.engine.latent import vae
from studio.library.history import History
from tests.engine.conftest import cpu_device


def emoji_like(index: int, size: int = 32) -> Image.Image:
    """A flat coloured disc on white: the kind of picture the built-in VAE knows."""
    image = Image.new("RGB", (size, size), "white")
    hue = [(230, 60, 60), (250, 200, 40), (60, 160, 230), (80, 190, 90)][index % 4]
    inset = 4 + index % 5
    ImageDraw.Draw(image).ellipse([inset, inset, size - inset, size - inset], fill=hue)
    return image


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emoji")
    for index in range(24):
        emoji_like(index).save(folder / f"disc-{index:02d}.png")
    return folder


@pytest.fixture
def context(tiny_sd_folder):
    return TaskContext(report=lambda p: None, cancelled=lambda: False, models=ModelCache(), device=cpu_device())


def run(kind, context, model, **args):
    job = Job(kind, args={"model": str(model), **args})
    return getattr(latent_tasks, latent_tasks.TASKS[kind])(job, context)


def test_clicking_the_map_decodes_an_image(context, tiny_sd_folder, image_folder):
    view = run("latent.map", context, tiny_sd_folder, source="folder", folder=str(image_folder)).value
    assert view.points.shape == (24, 2) and len(view.thumbnails) == 24
    image, z = run("latent.decode", context, tiny_sd_folder, at={"point": view.points[3].tolist()}).value
    assert image.size == (32, 32)
    # a data point's own place decodes from that image's latent exactly
    encoded = vae.encode_images(context.models.peek("latent"), [Image.open(view.paths[3])])[0]
    assert np.abs(z - encoded).max() < 1e-4


def test_strip_is_written_as_a_gif_with_n_frames(context, tiny_sd_folder, image_folder, tmp_path):
    files = sorted(image_folder.iterdir())
    result = run("latent.strip", context, tiny_sd_folder, a={"path": str(files[0])}, b={"path": str(files[1])},
                 frames=6, mode="slerp")
    history = History(tmp_path / "h.sqlite3", tmp_path / "out")
    entry = history.save_artifact(result.artifacts[0])
    gif = next(f for f in entry.files if f.suffix == ".gif")
    with Image.open(gif) as animation:
        assert animation.n_frames == 6
    assert entry.recipe.params["mode"] == "slerp"


def test_strip_is_also_an_mp4_with_its_recipe(context, tiny_sd_folder, image_folder, tmp_path):
    import av

    from studio.library.export import recipe_from_file

    files = sorted(image_folder.iterdir())
    result = run("latent.strip", context, tiny_sd_folder, a={"path": str(files[0])}, b={"path": str(files[1])},
                 frames=5, mode="lerp")
    entry = History(tmp_path / "h.sqlite3", tmp_path / "out").save_artifact(result.artifacts[0])
    mp4 = next(f for f in entry.files if f.suffix == ".mp4")
    with av.open(str(mp4)) as video:
        frames = list(video.decode(video=0))
    assert len(frames) == 5 and frames[0].width % 2 == 0
    # the first decoded frame is the strip's first picture, not a blank one (H.264 is lossy: compare loosely)
    first = np.asarray(result.artifacts[0].payload[0].convert("RGB").resize((frames[0].width, frames[0].height)), float)
    assert np.abs(frames[0].to_ndarray(format="rgb24").astype(float) - first).mean() < 20
    assert recipe_from_file(mp4).params["mode"] == "lerp"


def test_breeding_records_both_parents(context, tiny_sd_folder, image_folder, tmp_path):
    history = History(tmp_path / "h.sqlite3", tmp_path / "out")
    from studio.core.jobs import Artifact
    from studio.core.recipe import Recipe

    parents = [history.save_artifact(Artifact("image", Recipe("image", prompt=f"p{i}"), emoji_like(i))) for i in (0, 1)]
    result = run("latent.breed", context, tiny_sd_folder, parent_specs=[{"path": str(p.files[0])} for p in parents],
                 parents=[p.id for p in parents], children=3, mutation=0.2, seed=5)
    assert len(result.artifacts) == 3
    child = history.save_artifact(result.artifacts[0])
    assert child.parents == [parents[0].id, parents[1].id]
    assert [e.id for e in history.lineage(child.id)] == [child.id, parents[0].id, parents[1].id]


def test_anomaly_ranking_finds_a_planted_noise_image(tiny_sd_folder, image_folder, tmp_path):
    """Train the tiny VAE briefly on the discs, then a noise picture reconstructs worst."""
    import torch

    bundle = vae.load_vae(__import__("studio.core.catalog", fromlist=["resolve"]).resolve(str(tiny_sd_folder)),
                             cpu_device())
    images = [Image.open(p).convert("RGB") for p in sorted(image_folder.iterdir())][:16]
    pixels = vae._to_tensor(images, 32, "cpu")
    optimiser = torch.optim.Adam(bundle.vae.parameters(), lr=5e-3)
    torch.manual_seed(0)
    for _ in range(20):
        posterior = bundle.vae.encode(pixels).latent_dist
        loss = torch.nn.functional.mse_loss(bundle.vae.decode(posterior.sample()).sample, pixels) + 1e-6 * posterior.kl().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    bundle.vae.eval()
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    candidates = images[:10] + [noise] + images[10:]
    order = latent.rank_by_error(vae.reconstruction_errors(bundle, candidates))
    assert order.index(10) < 5


def test_breeding_map_points_saves_the_parents_first(context, tiny_sd_folder, image_folder, tmp_path):
    from studio.backends.runner import save_with_lineage

    view = run("latent.map", context, tiny_sd_folder, source="folder", folder=str(image_folder)).value
    specs = [{"point": view.points[0].tolist()}, {"point": view.points[5].tolist()}]
    result = run("latent.breed", context, tiny_sd_folder, parent_specs=specs, children=2, seed=1)
    history = History(tmp_path / "h.sqlite3", tmp_path / "out")
    save_with_lineage(history, result.artifacts)
    parent_a, parent_b, child = (history.get(a.entry_id) for a in result.artifacts[:3])
    assert parent_a.prompt == "parent A" and child.parents == [parent_a.id, parent_b.id]


def test_odd_sized_frames_are_padded_not_stretched_and_a_failing_encoder_keeps_the_gif(tmp_path, monkeypatch):
    import av

    from studio.core.jobs import Artifact
    from studio.core.recipe import Recipe
    from studio.library import export

    frames = [Image.new("RGB", (33, 17), (200, 30, 30)) for _ in range(3)]
    recipe = Recipe("animation", prompt="odd", params={"mode": "lerp"})
    mp4 = export.write_mp4(frames, tmp_path / "odd.mp4", recipe, fps=7.5)
    with av.open(str(mp4)) as video:
        first = next(video.decode(video=0)).to_ndarray(format="rgb24")
    assert first.shape[:2] == (18, 34)
    assert abs(int(first[8, 16, 0]) - 200) < 25 and first[17, 33].min() > 200  # picture kept, padding white

    def broken(*_args, **_kwargs):
        raise av.error.ValueError(22, "encoder exploded")

    monkeypatch.setattr(export, "write_mp4", broken)
    history = History(tmp_path / "h.sqlite3", tmp_path / "out")
    entry = history.save_artifact(Artifact("animation", recipe, frames, info={"fps": 12}))
    assert sorted(f.suffix for f in entry.files) == [".gif", ".png"]
