"""Shared fixtures. Tests write only under the repository's .data/ (or BRAINLDM_DATA if set)."""

import os
from pathlib import Path

import numpy as np
import pytest

from brainldm.settings import TEST_ENVIRONMENT  # does not import torch

ROOT = Path(__file__).resolve().parents[1]
# Set before torch is imported anywhere, so the nbval kernels inherit it too.
os.environ.setdefault("BRAINLDM_DATA", str(ROOT / ".data" / "tests"))
os.environ.update(TEST_ENVIRONMENT)  # one thread in every process, as the references were written


@pytest.fixture
def rng():
    """A seeded random generator."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def world():
    """A small world subject (40 training and 10 test images), shared by the tests."""
    from brainldm.data.datasets import load_dataset

    return load_dataset("world", subject="subj01", n_train=40, n_test=10)


@pytest.fixture(scope="session")
def tiny_models():
    """The world model set's classes with tiny random weights (fast; the pipeline, not quality)."""
    import torch

    from brainldm.models.loading import world_model_set
    from brainldm.models.world import WorldModels
    from brainldm.models.world.nets import TextEncoder, build

    torch.manual_seed(0)
    parts = {name: build(name, tiny=True).eval() for name in
             ("vae", "unet", "image_encoder", "cnn", "inception", "captioner", "depth_estimator")}
    text = TextEncoder()
    parts["scheduler"] = build("scheduler")
    return world_model_set(WorldModels(**parts, text_encoder=text, uncond=text.unconditional()))


@pytest.fixture(scope="module")
def ldm():
    """A LatentDiffusion of a tiny VAE (32 px images, 4 x 8 x 8 latents) and U-Net (12-d conditioning)."""
    import torch

    from brainldm.models.ldm import LatentDiffusion
    from brainldm.models.world.nets import build

    torch.manual_seed(0)
    vae = build("vae", tiny=True, sample_size=32).eval()
    unet = build("unet", tiny=True, sample_size=8, cross_attention_dim=12, in_channels=4).eval()
    return LatentDiffusion(vae, unet, build("scheduler"))


@pytest.fixture(scope="session")
def fabricated_nsd(tmp_path_factory):
    """A fabricated NSD tree (subj01, subj02; 2 sessions of 60 trials) and the tiny models: (root, models).

    Shared by the tests that run NSD chapters and stages; tests that change the models make their own.
    """
    from brainldm.data.datasets.nsd_fabricate import FabricationSize, fabricate_nsd
    from brainldm.testing.fixtures import save_tiny_models

    root = tmp_path_factory.mktemp("nsd")
    fabricate_nsd(root, subjects=("subj01", "subj02"),
                  size=FabricationSize(n_sessions=2, trials_per_session=60, n_shared=10, image_size=32),
                  formats=("hdf5",))
    models = tmp_path_factory.mktemp("models")
    save_tiny_models(models)
    return root, models


@pytest.fixture(scope="module")
def nsd_environment(fabricated_nsd, tmp_path_factory):
    """``fabricated_nsd`` and a fresh data folder for a module's NSD chapter runs: (root, models, data)."""
    return (*fabricated_nsd, tmp_path_factory.mktemp("data"))
