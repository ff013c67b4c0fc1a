"""Fixtures for the image engine tests: one tiny random SD model per session, loaded once."""

from __future__ import annotations

import pytest

from tests.engine.tiny_models import build_tiny_sd_folder


def cpu_device(dtype: str = "float32"):
    from studio.core.devices import DeviceChoice

    return DeviceChoice("cpu", dtype, "CPU (test)")


@pytest.fixture(scope="session")
def one_torch_thread():
    """Tiny models run fastest on one thread, and the CI machine's cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_sd_folder(tmp_path_factory, one_torch_thread):
    return build_tiny_sd_folder(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_sd_folder, tmp_path_factory):
    """The tiny folder loaded through the same path as a user's folder (shared: tests must not mutate it)."""
    from studio.core.catalog import resolve
    from studio.engine.image.pipelines import load_image_pipeline

    with pytest.MonkeyPatch.context() as patch:  # the per-test cache folder does not exist yet at session scope
        patch.setenv("LATENT_STUDIO_CACHE", str(tmp_path_factory.mktemp("cache")))
        return load_image_pipeline(resolve(str(tiny_sd_folder)), cpu_device())
