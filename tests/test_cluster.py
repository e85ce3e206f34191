"""The book's expensive stages on a Dask LocalCluster give the serial run's cache, also when a worker dies."""

import functools
import re
from pathlib import Path

import numpy as np
import pytest

from brainldm.book import build as book
from brainldm.book import cluster
from brainldm.testing.fixtures import run_stage_killed_once

RECON = {"strength": None, "guidance_scale": None, "num_inference_steps": 2, "n_samples": 1, "seed": 0,
         "protocol": None, "n_images": None}


def _plan(dataset, options, subjects):
    chapters = {"02_decode_latents": {"subject": subjects[0], "subjects": subjects, "dataset_options": options,
                                      **RECON},
                "09_encode_latents": {"subject": subjects[0], "dataset_options": options, "n_train": None,
                                      "strength": None, "guidance_scale": None, "num_inference_steps": 2, "seed": 0}}
    return cluster.plan_stages(dataset, chapters)


def _entries(cache):
    """Every array of every cache entry (.npz files and .npy folders), by path relative to the cache."""
    out = {}
    for path in sorted(Path(cache).rglob("*.np[yz]")):
        if any(part.startswith(".") for part in path.relative_to(cache).parts):
            continue
        rel = str(path.relative_to(cache))
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                out.update({f"{rel}:{name}": data[name] for name in data.files})
        else:
            out[rel] = np.load(path)
    return out


def _assert_identical(a, b):
    stages = ("features", "decoding", "reconstructions", "ldm_features")
    a = {k: v for k, v in a.items() if k.split("/")[0] in stages}
    b = {k: v for k, v in b.items() if k.split("/")[0] in stages}
    assert a and sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert a[key].tobytes() == b[key].tobytes(), f"{key} differs"


def _run(stages, cache, monkeypatch, workers=0, runner=cluster.run_stage):
    monkeypatch.setenv("BRAINLDM_CACHE", str(cache))
    cluster._dataset.cache_clear()
    if not workers:
        return cluster.run_stages(stages, None, runner=runner)
    client, local = cluster.connect(f"local:{workers}", log=lambda line: None)
    try:
        return cluster.run_stages(stages, client, runner=runner)
    finally:
        client.close()
        local.close()


def test_the_plan_shares_stages_and_puts_features_first():
    overrides, full = book.chapter_plan("world", "smoke")
    stages = cluster.plan_stages("world", full)
    keys = [s.key for s in stages]
    assert len(keys) == len(set(keys))
    kinds = {s.kind for s in stages}
    assert kinds == {"features", "reconstructions", "ldm_features"}
    position = {k: i for i, k in enumerate(keys)}
    assert all(position[dep] < position[s.key] for s in stages for dep in s.after)
    # chapters 9, 11 and 12 share the encoding features of subj01 with the smoke settings
    assert sum(s.kind == "ldm_features" for s in stages) == 1
    assert {s.subject for s in stages if s.kind == "reconstructions"} == {"subj01", "subj02"}


@pytest.mark.slow  # about 3 minutes: the world's betas and models in three processes
def test_world_stages_on_a_local_cluster_equal_the_serial_run(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLDM_DEVICE", "cpu")
    stages = _plan("world", {"n_train": 40, "n_test": 10}, ["subj01"])
    _run(stages, tmp_path / "serial", monkeypatch)
    done = _run(stages, tmp_path / "cluster", monkeypatch, workers=2)
    assert sorted(d["key"] for d in done) == sorted(s.key for s in stages)
    _assert_identical(_entries(tmp_path / "serial"), _entries(tmp_path / "cluster"))


def test_nsd_stages_survive_a_killed_worker_and_equal_the_serial_run(fabricated_nsd, tmp_path, monkeypatch):
    root, models = fabricated_nsd
    monkeypatch.setenv("BRAINLDM_NSD_ROOT", str(root))
    monkeypatch.setenv("BRAINLDM_MODELS", str(models))
    monkeypatch.setenv("BRAINLDM_DEVICE", "cpu")
    stages = _plan("nsd", {}, ["subj01", "subj02"])
    _run(stages, tmp_path / "serial", monkeypatch)
    marker = tmp_path / "killed"
    runner = functools.partial(run_stage_killed_once, marker=str(marker), kind="reconstructions", delay=0.5)
    done = _run(stages, tmp_path / "cluster", monkeypatch, workers=2, runner=runner)
    assert marker.exists()  # a worker was killed in the middle of a reconstruction...
    assert sorted(d["key"] for d in done) == sorted(s.key for s in stages)  # ...and the run still completed
    _assert_identical(_entries(tmp_path / "serial"), _entries(tmp_path / "cluster"))
    # a rerun finds everything in the cache
    again = _run(stages, tmp_path / "cluster", monkeypatch)
    assert all(d["seconds"] < 30 for d in again)


def _numbers(notebook):
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if "provenance" not in str(o.get("data", {}).get("text/plain", "")))
    return re.sub(r"\d+(\.\d+)? s\b", "TIME s", text)


@pytest.mark.slow
def test_chapters_print_the_same_numbers_after_serial_and_cluster_stages(fabricated_nsd, tmp_path, monkeypatch):
    root, models = fabricated_nsd
    monkeypatch.setenv("BRAINLDM_NSD_ROOT", str(root))
    monkeypatch.setenv("BRAINLDM_MODELS", str(models))
    monkeypatch.setenv("BRAINLDM_DEVICE", "cpu")
    overrides, full = book.chapter_plan("nsd", "smoke")
    chapters = ("02_decode_latents", "09_encode_latents")
    stages = cluster.plan_stages("nsd", {k: full[k] for k in chapters})
    texts = []
    for name, workers in (("serial", 0), ("cluster", 2)):
        _run(stages, tmp_path / name, monkeypatch, workers=workers)
        texts.append([_numbers(book.run_chapter(stem, overrides[stem], tmp_path / f"{name}_out")) for stem in chapters])
    assert texts[0] == texts[1]


@pytest.mark.slow
def test_nsd_smoke_book_on_a_local_cluster(fabricated_nsd, tmp_path, monkeypatch):
    from brainldm.book import cli

    root, models = fabricated_nsd
    monkeypatch.setenv("BRAINLDM_NSD_ROOT", str(root))
    monkeypatch.setenv("BRAINLDM_MODELS", str(models))
    monkeypatch.setenv("BRAINLDM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("BRAINLDM_DEVICE", "cpu")
    out = tmp_path / "book"
    assert cli.main(["book", "--dataset", "nsd", "--profile", "smoke", "--scheduler", "local:2",
                     "--output", str(out)]) == 0
    html = out / "_build" / "html"
    executed, absent = book.book_chapters("nsd")
    for stem in executed:
        page = (html / f"{stem}.html").read_text()
        assert 'class="brainldm-provenance"' in page, stem
    for stem in absent:
        assert "is not part of the book on" in (html / f"{stem}.html").read_text()
    provenance = (html / "provenance.html").read_text()
    assert all(stem in provenance for stem in executed)
