"""The built-in image model: emoji data, one training step, and the committed pipeline folder."""

from __future__ import annotations

import numpy as np
import pytest

from studio import paths
from studio.data import emoji as data_emoji

needs_font = pytest.mark.skipif(
    not data_emoji.FONT_PATH.exists() or not data_emoji.EMOJI_TEST_PATH.exists(),
    reason="needs Debian packages fonts-noto-color-emoji and unicode-data",
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These models are tiny: on a busy 2-core machine, 2 torch threads wait on each other ~100x longer than they compute."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


HANDFUL = {"red heart", "grinning face", "france", "dog face", "thumbs up", "one o'clock"}


@pytest.fixture(scope="module")
def handful():
    entries = [e for e in data_emoji.list_emoji() if e.name in HANDFUL]
    return data_emoji.render_dataset(entries)


@needs_font
def test_data_builder_renders_a_handful_of_glyphs_with_labels(handful):
    assert set(handful.names) == HANDFUL
    assert handful.images.shape == (len(HANDFUL), 64, 64, 3)
    assert handful.images.dtype == np.uint8
    by_name = dict(zip(handful.names, range(len(handful)), strict=False))
    heart = handful.images[by_name["red heart"]].astype(int)
    # Corners are the white background; the middle of the heart is red.
    assert (heart[0, 0] == 255).all() and (heart[-1, -1] == 255).all()
    r, g, b = heart[28:36, 28:36].reshape(-1, 3).mean(0)
    assert r > 150 and g < 100 and b < 100
    face = handful.images[by_name["grinning face"]].astype(int)
    r, g, b = face[10:20, 28:36].reshape(-1, 3).mean(0)  # the forehead is yellow
    assert r > 180 and g > 130 and b < 100
    labels = {
        n: (g, s, c)
        for n, g, s, c in zip(handful.names, handful.groups, handful.subgroups, handful.classes(), strict=False)
    }
    assert labels["red heart"] == ("Smileys & Emotion", "heart", "heart")
    assert labels["france"] == ("Flags", "country-flag", "flag")
    assert labels["dog face"][2] == "animal"
    assert labels["one o'clock"][2] == "clock"
    assert "thumbs up" in {n for n in handful.names} and labels["thumbs up"][2] == "hand"
    assert "heart" in handful.aliases[by_name["red heart"]]


@needs_font
def test_blank_glyphs_are_skipped_and_the_split_keeps_skin_tones_together():
    font = data_emoji.load_font()
    assert data_emoji.render_glyph("\ue000", font) is None  # private use: the font has no picture
    assert data_emoji.is_held_out("waving hand") == data_emoji.is_held_out("waving hand: medium-dark skin tone")
    names = [f"emoji {i}" for i in range(1000)]
    share = np.mean([data_emoji.is_held_out(n) for n in names])
    assert 0.06 < share < 0.14



def test_per_emoji_weights_give_each_emoji_one_share_whatever_its_skin_tones():
    tones = ["", ": light skin tone", ": medium skin tone", ": dark skin tone"]
    names = [f"thumbs up{t}" for t in tones] + ["red heart", "kiss: person, person, light skin tone, dark skin tone",
                                                 "kiss: person, person"]
    data = data_emoji.EmojiDataset(
        images=np.zeros((len(names), 64, 64, 3), np.uint8), chars=["x"] * len(names), names=names,
        aliases=[()] * len(names), groups=["g"] * len(names), subgroups=["s"] * len(names),
        held_out=np.zeros(len(names), bool),
    )
    weights = data.per_emoji_weights()
    assert weights.sum() == pytest.approx(1.0)
    assert weights[:4].sum() == pytest.approx(1 / 3)  # four thumbs weigh what one heart does
    assert weights[4] == pytest.approx(1 / 3) and weights[5] == pytest.approx(weights[6])

@needs_font
def test_dataset_cache_round_trips_without_pickles(handful, tmp_path):
    path = tmp_path / "emoji.npz"
    data_emoji.save_dataset(handful, path)
    again = data_emoji.read_dataset(path)
    assert again.names == handful.names and again.aliases == handful.aliases
    assert np.array_equal(again.images, handful.images)


def test_tokenizer_learnt_from_captions_keeps_words_whole(tmp_path):
    from studio.training.image_captions import tokenize, write_clip_tokenizer

    captions = ["red heart", "blue heart", "grinning face", "face smiling", "red apple"] * 3
    tokenizer = write_clip_tokenizer(captions, tmp_path / "tok", max_merges=200)
    assert tokenizer.tokenize("red heart") == ["red</w>", "heart</w>"]
    ids = tokenize(tokenizer, ["red heart", ""])
    assert ids.shape == (2, 77)
    assert ids[1, 0] == tokenizer.bos_token_id and ids[1, 1] == tokenizer.eos_token_id
    red, heart = tokenizer.convert_tokens_to_ids(["red</w>", "heart</w>"])
    assert ids[0, :4].tolist() == [tokenizer.bos_token_id, red, heart, tokenizer.eos_token_id]
    # Unseen words still tokenize (into characters), never into an error.
    assert tokenizer.tokenize("zebra") != []


def _tiny_run(tmp_path, handful):
    from studio.training.image_model import Sizes
    from studio.training.image_run import Run

    data = handful.subset(range(len(handful)))  # a copy: the fixture is shared
    data.held_out = np.arange(len(data)) == 0
    run = Run(tmp_path / "run", Sizes.tiny(), data, log=lambda message: None)
    run.build()
    return run


@needs_font
def test_one_training_step_on_a_tiny_slice_gives_a_finite_loss_and_resumes(tmp_path, handful):
    import torch

    from studio.training.image_captions import tokenize
    from studio.training.image_model import images_to_tensor, ldm_loss, noise_scheduler, vae_loss

    torch.manual_seed(0)
    run = _tiny_run(tmp_path, handful)
    images = images_to_tensor(run.train.images)
    loss, parts = vae_loss(run.vae, images)
    loss.backward()
    assert torch.isfinite(loss) and all(np.isfinite(v) for v in parts.values())

    latents = run.vae.encode(images).latent_dist.mean.detach()
    assert latents.shape == (len(images), 4, 16, 16)
    ids = tokenize(run.tokenizer, run.train.names)
    loss = ldm_loss(run.unet, run.text_encoder, noise_scheduler(), latents, ids, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert run.unet.conv_in.weight.grad.abs().sum() > 0
    assert run.text_encoder.get_input_embeddings().weight.grad.abs().sum() > 0

    run.state["ldm_step"] = 7
    run.state["scaling_factor"] = 1.5
    run.save()
    again = type(run)(run.dir, run.sizes, run.data)
    assert again.load()
    assert again.state["ldm_step"] == 7
    assert torch.equal(again.unet.conv_in.weight, run.unet.conv_in.weight)


@needs_font
def test_saved_pipeline_folder_loads_through_diffusers(tmp_path, handful):
    import torch
    from diffusers import StableDiffusionPipeline

    run = _tiny_run(tmp_path, handful)
    run.state["scaling_factor"] = 1.0
    run.pipeline().save_pretrained(tmp_path / "model", safe_serialization=True)
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "model", dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("red heart", num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert image.images.shape == (1, 64, 64, 3)


BUILTIN = paths.builtin_model_dir("emoji-ldm")


@pytest.mark.skipif(
    not (BUILTIN / "model_index.json").exists(),
    reason="models/emoji-ldm not exported yet (python -m studio.training.image export)",
)
def test_builtin_model_loads_offline_and_same_seed_gives_same_image():
    import torch
    from diffusers import StableDiffusionPipeline

    from studio.core import catalog

    catalog.check_weights_folder(BUILTIN)
    total = sum(f.stat().st_size for f in BUILTIN.rglob("*") if f.is_file())
    assert total < 20 * 2**20
    pipe = StableDiffusionPipeline.from_pretrained(BUILTIN, dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.safety_checker is None

    def make(seed):
        generator = torch.Generator().manual_seed(seed)
        return pipe(
            "red heart", num_inference_steps=4, guidance_scale=4.0, generator=generator, output_type="np"
        ).images

    first, again, other = make(1), make(1), make(2)
    assert first.shape == (1, 64, 64, 3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.std() > 0.05  # a picture, not a flat field


@pytest.mark.skipif(not (BUILTIN / "model_index.json").exists(), reason="models/emoji-ldm not exported yet")
def test_ddim_built_from_the_models_own_config_draws_the_same_picture_as_its_default_sampler():
    import torch
    from diffusers import StableDiffusionPipeline

    from studio.engine.image.schedulers import make_scheduler

    pipe = StableDiffusionPipeline.from_pretrained(BUILTIN, dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    config = dict(pipe.scheduler.config)
    pictures = {}
    for name in ("dpmpp_2m", "ddim"):
        pipe.scheduler = make_scheduler(name, config)
        generator = torch.Generator().manual_seed(1)
        pictures[name] = pipe("smiling cat face", num_inference_steps=20, guidance_scale=5.0, generator=generator,
                              output_type="np").images[0]
    # two good samplers of one model from one noise land close; DDIM clipping latents to [-1, 1] gave blobs (0.3)
    assert np.abs(pictures["ddim"] - pictures["dpmpp_2m"]).mean() < 0.05


@needs_font
def test_the_decoder_learns_from_latents_the_diffusion_model_drew(tmp_path, handful, monkeypatch):
    import time

    import torch

    from studio.training import image_stages
    from studio.training.image_model import images_to_tensor
    from studio.training.image_stages import drawn_latents, train_decoder

    torch.manual_seed(0)
    run = _tiny_run(tmp_path, handful)
    run.state["scaling_factor"] = 1.0
    images = images_to_tensor(run.train.images[:2])
    drawn = drawn_latents(run, images, ["red heart", "france"], torch.Generator().manual_seed(0), steps=2)
    with torch.no_grad():
        encoded = run.vae.encode(images).latent_dist.mean
    assert drawn.shape == encoded.shape and not torch.allclose(drawn, encoded)
    encoder_before = [p.clone() for p in run.vae.encoder.parameters()]
    decoder_before = [p.clone() for p in run.vae.decoder.parameters()]
    monkeypatch.setattr(image_stages, "DRAWN_POOL", 4)
    train_decoder(run, time.time() + 600, batch=4, on_samples=True, max_steps=2)
    assert run.state["decoder_step"] == 2
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, run.vae.encoder.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(decoder_before, run.vae.decoder.parameters(), strict=True))


def test_the_decoders_background_term_sees_only_far_background_and_a_fringe_there():
    import torch

    from studio.training.image_stages import background_loss, far_background

    images = torch.ones(1, 3, 64, 64)  # white, in [-1, 1]
    images[:, 1:, 20:40, 20:40] = -1.0  # a red square
    mask = far_background(images)[0, 0]
    assert mask[30, 30] == 0 and mask[30, 40] == 0 and mask[30, 41] == 0  # the square (x 20-39) and 2 px around
    assert mask[30, 42] == 1 and mask[5, 5] == 1 and mask[30, 62] == 1
    fringe = images.clone()
    fringe[:, 0, :, 62] -= 0.15  # the cyan column: red dipped at x = 62
    assert background_loss(images, images) == 0
    assert background_loss(fringe, images) > 0
    inked = images.clone()
    inked[:, :, 20:40, 41] -= 0.15  # an error next to the square is the whole-picture loss's business
    assert background_loss(inked, images) == 0


def test_beyond_pure_white_or_black_costs_the_decoder_nothing_because_it_is_never_shown():
    import torch

    from studio.training.image_stages import shown_error

    images = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.2])
    recon = torch.tensor([1.3, 0.9, -1.4, -0.8, 0.5])
    assert torch.allclose(shown_error(recon, images), torch.tensor([0.0, -0.1, 0.0, 0.2, 0.3]))
    assert torch.allclose(shown_error(recon.clamp(-1, 1), images), recon.clamp(-1, 1) - images)
