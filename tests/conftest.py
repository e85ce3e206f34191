"""Shared fixtures. Tests write only under the repository's .data/ (or BRAINLDM_DATA if set)."""

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Set before brainldm is imported anywhere, so the nbval kernels inherit it too.
os.environ.setdefault("BRAINLDM_DATA", str(ROOT / ".data" / "tests"))
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture
def rng():
    """A seeded random generator."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def world():
    """A small world subject (40 training and 10 test images), shared by the tests."""
    from brainldm.datasets import load_dataset

    return load_dataset("world", subject="subj01", n_train=40, n_test=10)
