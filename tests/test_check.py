"""``brainldm check``: what it reports about NSD, the models and the GPU."""

import huggingface_hub.constants
import pytest
import torch

from brainldm.book import cli
from brainldm.models import zoo
from brainldm.book.check import report
from brainldm.data.datasets.nsd_fabricate import FabricationSize, fabricate_nsd


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every location brainldm, Hugging Face and torch look at is inside tmp_path; no GPU."""
    monkeypatch.setenv("BRAINLDM_DATA", str(tmp_path / "home"))
    monkeypatch.setenv("BRAINLDM_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf_hub"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def fake_model(folder, name):
    """The files :func:`zoo.locate` checks for (enough for ``check``, which never loads weights)."""
    spec = zoo.MODELS[name]
    for item in spec.required:
        path = folder / spec.repo_id / item.split("|")[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")


def model_line(text, name):
    return next(line for line in text.splitlines() if line.strip().startswith(name + " "))


def test_nothing_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLDM_NSD_ROOT", str(tmp_path / "nsd"))
    text = report()
    assert "GPU: none visible" in text
    assert "world  always available" in text
    assert f"root {tmp_path / 'nsd'} (from BRAINLDM_NSD_ROOT): missing" in text
    for name, spec in zoo.MODELS.items():
        line = model_line(text, name)
        assert ("missing, optional" if name in zoo.OPTIONAL else "MISSING") in line and spec.repo_id in line
    sd = model_line(text, "sd-v1-4")
    assert str(tmp_path / "models/CompVis/stable-diffusion-v1-4") in sd
    assert str(tmp_path / "hf_hub/models--CompVis--stable-diffusion-v1-4") in sd
    assert "hf download CompVis/stable-diffusion-v1-4" in text
    assert str(tmp_path / "torch/hub/checkpoints/alexnet-owt-7be5be79.pth") in model_line(text, "alexnet")


def test_nsd_sessions_models_and_gpu_found(tmp_path, monkeypatch):
    root = tmp_path / "nsd"
    fabricate_nsd(root, subjects=("subj01", "subj05"),
                  size=FabricationSize(n_sessions=3, trials_per_session=9, shape=(6, 7, 5), n_shared=2),
                  formats=("hdf5",))
    betas = root / "nsddata_betas/ppdata/subj05/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session02.hdf5"
    betas.unlink()
    (root / "nsddata/ppdata/subj05/func1pt8mm/roi/nsdgeneral.nii.gz").unlink()
    fake_model(tmp_path / "models", "dpt-large")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "Fake GPU 80GB")

    text = report(root=root)
    assert "GPU: Fake GPU 80GB" in text
    assert f"root {root} (default; set BRAINLDM_NSD_ROOT to change): found" in text
    assert "experiment design: ok" in text and "stimuli: ok" in text
    assert "subj01: 3 sessions (hdf5)" in text
    assert "subj05: 2 sessions (hdf5), sessions missing: [2]" in text
    assert "ROI volume(s) missing: nsdgeneral" in text
    assert "subj02" not in text
    assert f"found {tmp_path / 'models/Intel/dpt-large'}" in model_line(text, "dpt-large")
    assert "MISSING" in model_line(text, "blip")


def test_an_incomplete_model_says_what_it_lacks(tmp_path):
    fake_model(tmp_path / "models", "sd-v1-4")
    (tmp_path / "models/CompVis/stable-diffusion-v1-4/vae/config.json").unlink()
    assert "incomplete, missing vae/config.json" in model_line(report(), "sd-v1-4")


def test_the_command_line_prints_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BRAINLDM_NSD_ROOT", str(tmp_path / "nsd"))
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(report().strip())
    assert "Provenance (what every chapter's page records)" in out and "code: git" in out
