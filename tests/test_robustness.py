"""Nothing silent, nothing lost (issue #17): every bad input a clear error, every cache fault survived."""

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from brainldm.data import cache
from brainldm.errors import BrainLDMError

# --- the cache: damaged, foreign, unwritable entries; concurrent writers ---------------------


def _entry(root, stage="s"):
    return next((Path(root) / stage).glob("*.npz"))


def test_cache_entry_holds_its_key(tmp_path):
    out = cache.cached_arrays("s", {"a": 1}, "1", lambda: {"x": np.arange(3)}, root=tmp_path)
    with np.load(_entry(tmp_path)) as data:
        assert str(data[cache.KEY_MEMBER]) == cache.cache_key("s", {"a": 1}, "1")
    assert list(out) == ["x"]
    again = cache.cached_arrays("s", {"a": 1}, "1", lambda: pytest.fail("recomputed"), root=tmp_path)
    assert list(again) == ["x"] and np.array_equal(again["x"], np.arange(3))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty", "foreign"])
def test_damaged_cache_entry_is_reported_deleted_and_recomputed(tmp_path, damage):
    compute = lambda: {"x": np.arange(10_000, dtype=np.float64)}  # noqa: E731
    cache.cached_arrays("s", {"a": 1}, "1", compute, root=tmp_path)
    path = _entry(tmp_path)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(raw[:len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all" * 10)
    elif damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(raw)
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # another key's entry copied under this key's name
        cache.cached_arrays("s", {"a": 2}, "1", lambda: {"x": np.zeros(3)}, root=tmp_path)
        other = next(p for p in (tmp_path / "s").glob("*.npz") if p != path)
        path.write_bytes(other.read_bytes())
    with pytest.warns(cache.CacheWarning, match=str(path)):
        out = cache.cached_arrays("s", {"a": 1}, "1", compute, root=tmp_path)
    assert np.array_equal(out["x"], compute()["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = cache.cached_arrays("s", {"a": 1}, "1", lambda: pytest.fail("recomputed"), root=tmp_path)
    assert np.array_equal(again["x"], compute()["x"])


def _write_npy(folder, values=(1.0, 2.0)):
    np.save(folder / "a.npy", np.array(values))


@pytest.mark.parametrize("damage", ["truncate", "no_manifest", "foreign"])
def test_damaged_memmap_folder_is_recomputed(tmp_path, damage):
    cache.cached_memmaps("m", {"a": 1}, "1", _write_npy, root=tmp_path)
    folder = tmp_path / "m" / cache.cache_key("m", {"a": 1}, "1")
    if damage == "truncate":
        (folder / "a.npy").write_bytes((folder / "a.npy").read_bytes()[:-4])
    elif damage == "no_manifest":
        (folder / cache.MANIFEST).unlink()
    else:
        (folder / cache.MANIFEST).write_text('{"key": "0123", "files": {}}')
    with pytest.warns(cache.CacheWarning, match=str(folder)):
        out = cache.cached_memmaps("m", {"a": 1}, "1", _write_npy, root=tmp_path)
    assert np.array_equal(out["a"], [1.0, 2.0])


def test_unwritable_cache_warns_and_returns_the_result(tmp_path):
    if os.geteuid() == 0:  # root writes anywhere: make the stage path a file instead of a folder
        (tmp_path / "s").write_text("")
    else:
        tmp_path.chmod(0o500)
    try:
        with pytest.warns(cache.CacheWarning, match="could not write"):
            out = cache.cached_arrays("s", {}, "1", lambda: {"x": np.ones(2)}, root=tmp_path)
        assert np.array_equal(out["x"], np.ones(2))
        with pytest.warns(cache.CacheWarning, match="could not write"):
            out = cache.cached_memmaps("m" if os.geteuid() else "s", {}, "1", _write_npy, root=tmp_path)
        assert np.array_equal(out["a"], [1.0, 2.0])
    finally:
        tmp_path.chmod(0o700)


def test_entries_follow_the_umask_and_stale_temporaries_are_cleaned(tmp_path):
    stale = tmp_path / "s" / ".0123.npz.abcdefgh.tmp"
    fresh = tmp_path / "s" / ".4567.npz.abcdefgh.tmp"
    stale.parent.mkdir()
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    old = time.time() - 2 * cache.STALE_AGE
    os.utime(stale, (old, old))
    previous = os.umask(0o027)
    cache._umask = None
    try:
        cache.cached_arrays("s", {}, "1", lambda: {"x": np.ones(2)}, root=tmp_path)
        cache.cached_memmaps("m", {}, "1", _write_npy, root=tmp_path)
    finally:
        os.umask(previous)
        cache._umask = None
    assert _entry(tmp_path).stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "m" / cache.cache_key("m", {}, "1")).stat().st_mode & 0o777 == 0o750
    assert not stale.exists() and fresh.exists()


_WRITER = """
import sys, time, numpy as np
from brainldm.data import cache
def compute():
    open(sys.argv[2], "a").write("computed\\n")
    time.sleep(1.0)
    return {"x": np.arange(5)}
out = cache.cached_arrays("s", {}, "1", compute, root=sys.argv[1])
assert out["x"].tolist() == [0, 1, 2, 3, 4]
"""


def test_one_writer_per_key_across_processes(tmp_path):
    log = tmp_path / "log"
    runs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path / "c"), str(log)]) for _ in range(2)]
    assert [p.wait(60) for p in runs] == [0, 0]
    assert log.read_text().count("computed") == 1


_WORLD = """
import warnings
warnings.simplefilter("error", UserWarning)
from brainldm.data.datasets import load_dataset
ds = load_dataset("world", subject="subj01", n_train=20, n_test=5)
betas, ids = ds.betas("train")
print(betas.shape, float(betas.sum()))
"""


def test_two_processes_build_a_fresh_world_cache_at_once(tmp_path):
    env = {**os.environ, "BRAINLDM_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    env.pop("BRAINLDM_CACHE", None)

    def start():
        return subprocess.Popen([sys.executable, "-c", _WORLD], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    runs = [start(), start()]
    outputs = [p.communicate(timeout=300) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    third = start()
    out, err = third.communicate(timeout=300)
    assert third.returncode == 0, err[-2000:]
    last = [text.strip().splitlines()[-1] for text in (outputs[0][0], outputs[1][0], out)]
    assert last[0] == last[1] == last[2]
    store = tmp_path / "data" / "cache" / "pycortex" / "db"
    assert (store / ".S1.complete").exists()
    assert not list(store.glob(".*.tmp"))


def test_incomplete_pycortex_copy_is_redone(tmp_path, monkeypatch):
    from brainldm.data import anatomy

    anatomy.import_cortex()
    bundled = anatomy.bundled_filestore() / anatomy.SUBJECT
    store = tmp_path / "db"
    (store / anatomy.SUBJECT / "surfaces").mkdir(parents=True)  # what a killed copy leaves
    anatomy._copy_subject(bundled, store)
    assert anatomy._complete_copy(bundled, store / anatomy.SUBJECT)
    assert (store / ".S1.complete").exists()


# --- NSD files: damaged, converted or inconsistent inputs are errors that name the file -------
@pytest.fixture(scope="module")
def nsd_master(tmp_path_factory):
    from brainldm.data.datasets.nsd_fabricate import FabricationSize, fabricate_nsd

    root = tmp_path_factory.mktemp("nsd") / "nsd"
    fabricate_nsd(root, subjects=("subj01",),
                  size=FabricationSize(n_sessions=2, trials_per_session=30, n_shared=6, image_size=8), formats=("nii",))
    return root


@pytest.fixture
def nsd_root(nsd_master, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("BRAINLDM_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "nsd"
    shutil.copytree(nsd_master, root)
    return root


def _betas_path(root, session=1):
    return root / f"nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session{session:02d}.nii.gz"


def _load(root, **options):
    from brainldm.data.datasets import load_dataset

    return load_dataset("nsd", subject="subj01", root=root, **options)


def test_flipped_bytes_in_gzipped_betas_are_an_error_and_change_the_cache_key(nsd_root):
    from brainldm.data.datasets import nsd
    from brainldm.errors import DataError

    path = _betas_path(nsd_root)
    good = path.read_bytes()
    key = nsd._file_identity(path)
    stat = path.stat()
    raw = bytearray(good)
    for offset in range(len(raw) // 3, len(raw) - 16, max(1, len(raw) // 7)):
        raw[offset] ^= 0x5A
    path.write_bytes(raw)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same name, size and time as the good file
    assert nsd._file_identity(path) != key
    with pytest.raises(DataError, match=str(path)):
        _load(nsd_root).betas("train")
    path.write_bytes(good)
    assert _load(nsd_root).betas("train")[0].shape[0] > 0


def _edit_design(root, **fields):
    import scipy.io

    path = root / "nsddata/experiments/nsd/nsd_expdesign.mat"
    design = scipy.io.loadmat(path)
    design = {k: v for k, v in design.items() if not k.startswith("__")}
    for name, edit in fields.items():
        design[name] = edit(design[name])
    scipy.io.savemat(path, design)


@pytest.mark.parametrize("field, edit, message", [
    ("masterordering", lambda v: v - 1, "masterordering holds 0.*0-based"),
    ("masterordering", lambda v: v + 10_000, r"masterordering holds \d+, but .* in 1\.\.\d+"),
    ("subjectim", lambda v: v - 1, "subjectim holds 0"),
    ("sharedix", lambda v: v * 0, "sharedix holds 0"),
    ("masterordering", lambda v: v.astype(float) + 0.5, "masterordering must hold whole numbers"),
])
def test_expdesign_indices_are_range_checked(nsd_root, field, edit, message):
    from brainldm.errors import DataError

    _edit_design(nsd_root, **{field: edit})
    with pytest.raises(DataError, match=message):
        _load(nsd_root)


def _set_slope(root):
    import nibabel as nib

    path = _betas_path(root)
    image = nib.load(path)
    data = np.asarray(image.dataobj)
    scaled = nib.Nifti1Image(data, image.affine, image.header)
    scaled.header.set_slope_inter(1 / 300, 0.0)
    scaled.set_data_dtype(np.int16)
    nib.save(scaled, path)


def _not_gzip(root):
    path = _betas_path(root)
    path.write_bytes(b"\x00" * 4096)


def _nan_roi(root):
    import nibabel as nib

    path = root / "nsddata/ppdata/subj01/func1pt8mm/roi/nsdgeneral.nii.gz"
    image = nib.load(path)
    data = np.asarray(image.dataobj).astype(np.float32)
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, image.affine), path)


def _truncated_betas(root):
    path = _betas_path(root, 2)
    path.write_bytes(path.read_bytes()[:-100])


@pytest.mark.parametrize("damage, message", [
    (_set_slope, "NIfTI scaling"),
    (_not_gzip, "could not read"),
    (_nan_roi, "NaN"),
    (_truncated_betas, "could not read"),
])
def test_damaged_nsd_volumes_are_data_errors(nsd_root, damage, message):
    from brainldm.errors import DataError

    damage(nsd_root)
    with pytest.raises(DataError, match=message):
        _load(nsd_root, cache=False).betas("train")


def test_bad_stim_info_and_captions_are_data_errors(nsd_root):
    import json

    from brainldm.errors import DataError

    data = _load(nsd_root, cache=False)
    ids = data.betas("test")[1][:2]
    csv = nsd_root / "nsddata/experiments/nsd/nsd_stim_info_merged.csv"
    good_csv = csv.read_bytes()
    csv.write_bytes(b"\xff\xfe\xfa" + good_csv)
    with pytest.raises(DataError, match="nsd_stim_info_merged.csv"):
        _load(nsd_root, cache=False).captions(ids)
    csv.write_bytes(good_csv)
    for split in ("train2017", "val2017"):
        path = nsd_root / f"nsddata_stimuli/stimuli/nsd/annotations/captions_{split}.json"
        content = json.loads(path.read_text())
        del content["annotations"][0]["caption"]
        path.write_text(json.dumps(content))
    with pytest.raises(DataError, match="caption entries lack"):
        _load(nsd_root, cache=False).captions(ids)


@pytest.mark.parametrize("sessions", [True, 1.5, "2", 0, -1])
def test_bad_sessions_are_parameter_errors(nsd_root, sessions):
    from brainldm.errors import ParameterError

    with pytest.raises(ParameterError, match="sessions"):
        _load(nsd_root, sessions=sessions)


# --- parameters: every chapter parameter and dataset option checked up front ---------------------
@pytest.mark.parametrize("name, text, message", [
    ("fdr", "1.5", r"'fdr' = 1.5 .* in \(0, 1\)"),
    ("n_boot", "0", "'n_boot' = 0"),
    ("n_examples", "-2", "'n_examples' = -2"),
    ("guidance_scale", "nan", "'guidance_scale' = 'nan'"),
    ("guidance_scale", "float('nan')", "'guidance_scale'"),
    ("guidance_scale", "-3.0", "'guidance_scale' = -3.0"),
    ("strength", "high", "'strength' = 'high'"),
    ("n_samples", "1.5", "'n_samples' = 1.5"),
    ("n_images", "-1", "'n_images' = -1"),
    ("seed", "-1", "'seed' = -1"),
    ("subject", "'../subj01'", "'subject'"),
    ("subject", "subj03", "unknown subject 'subj03'"),
    ("dataset_options", "{'n_trian': 60}", "unknown option.*'n_trian'.*valid options are: seed, n_train"),
    ("dataset_options", "{'seed': -1}", r"dataset_options\['seed'\]"),
    ("dataset_options", "{'n_train': 'many'}", r"dataset_options\['n_train'\]"),
    ("dataset_options", "[1, 2]", "'dataset_options'"),
    ("protocol", "mine", "'protocol' = 'mine'.*'authors', 'brainldm'"),
    ("dtype", "float64", "'dtype'"),
])
def test_bad_chapter_parameters_are_refused_before_any_work(name, text, message):
    from brainldm.book import build as book
    from brainldm.errors import ParameterError

    defaults = {"dataset": "world", "subject": "subj01", "dataset_options": {}, "fdr": 0.05, "n_boot": 1000,
                "n_examples": 8, "guidance_scale": None, "strength": None, "n_samples": None, "n_images": None,
                "seed": 0, "protocol": None, "dtype": None}
    with pytest.raises(ParameterError, match=message):
        book.parse_parameters({name: text}, defaults, "02_decode_latents")


def test_chapter_overrides_and_good_values_pass():
    from brainldm.book import build as book

    defaults = {"dataset": "world", "n_images": None, "guidance_scale": None, "strengths": [0.4, 0.8]}
    assert book.parse_parameters({"n_images": "0"}, defaults, "04_decode_captions") == {"n_images": 0}
    with pytest.raises(BrainLDMError, match="n_images"):
        book.parse_parameters({"n_images": "0"}, defaults, "02_decode_latents")
    assert book.parse_parameters({"guidance_scale": "7"}, defaults) == {"guidance_scale": 7.0}
    with pytest.raises(BrainLDMError, match="strengths"):
        book.parse_parameters({"strengths": "[0.4, 1.5]"}, defaults)


def test_every_chapter_default_and_smoke_and_profile_parameter_passes():
    import jupytext

    from brainldm.book import build as book

    smoke = book.smoke_parameters()
    for path in book.list_chapters():
        defaults = book.chapter_parameters(jupytext.read(path))
        book.parse_parameters(smoke.get(path.stem, {}), defaults, path.stem)
        book.parse_parameters({}, defaults, path.stem)


@pytest.mark.parametrize("options, message", [
    ({"n_trian": 60}, "unknown option.*n_trian"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"n_test": True}, "n_test"),
    ({"image_size": 50}, "multiple of 16"),
])
def test_load_dataset_checks_its_options(options, message):
    from brainldm.data.datasets import load_dataset
    from brainldm.errors import ParameterError

    with pytest.raises(ParameterError, match=message):
        load_dataset("world", subject="subj01", **options)


@pytest.mark.parametrize("value, kwargs, ok", [
    (0.5, {"kind": "float", "low": 0, "high": 1}, True),
    (float("inf"), {"kind": "float"}, False),
    (True, {"kind": "int"}, False),
    (3, {"kind": "float"}, True),
    (None, {"kind": "int", "none": True}, True),
    ([], {"kind": "str", "many": True}, False),
    (["a", 1], {"kind": "str", "many": True}, False),
])
def test_check_parameter(value, kwargs, ok):
    from brainldm.errors import ParameterError, Rule
    from brainldm.book.parameters import check_parameter

    rule = Rule(**kwargs)
    if ok:
        check_parameter("x", value, rule)
        check_parameter("x", value, rule.kind, **{k: v for k, v in kwargs.items() if k != "kind"})  # kind + keywords
    else:
        with pytest.raises(ParameterError, match="'x'"):
            check_parameter("x", value, rule)
        with pytest.raises(ParameterError, match="'x'"):
            check_parameter("x", value, rule.kind, **{k: v for k, v in kwargs.items() if k != "kind"})


# --- the command line: one line, chapter and cell, non-zero exit ----------------------------------
def _project(tmp_path, source):
    chapters = tmp_path / "project" / "chapters"
    chapters.mkdir(parents=True)
    (chapters / "01_fail.py").write_text(
        "# %% tags=[\"parameters\"]\nn = 1\n\n# %%\nprint('start')\n\n# %%\n" + source + "\n")
    return tmp_path / "project"


def test_dead_kernel_names_chapter_and_cell(tmp_path, monkeypatch, capsys):
    from brainldm.book import cli

    project = _project(tmp_path, "import os\nos.kill(os.getpid(), 9)")
    monkeypatch.setenv("BRAINLDM_ROOT", str(project))
    assert cli.main(["run", "01", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chapter 01_fail" in err and "cell 2" in err and "kernel died" in err


def test_unwritable_output_folder_is_one_line(tmp_path, monkeypatch, capsys):
    from brainldm.book import cli

    project = _project(tmp_path, "pass")
    monkeypatch.setenv("BRAINLDM_ROOT", str(project))
    (tmp_path / "file").write_text("")
    assert cli.main(["run", "01", "-o", str(tmp_path / "file" / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the executed notebook" in err and "-o" in err
    assert cli.main(["run", "01", "-p", "n", "'x'", "-o", str(tmp_path / "out")]) == 2
    assert "parameter 'n'" in capsys.readouterr().err


# --- models: a folder that loads but cannot work is reported by `brainldm check` ----------------
@pytest.fixture(scope="module")
def tiny_model_folder(tmp_path_factory):
    import torch
    import torchvision
    from diffusers import StableDiffusionImg2ImgPipeline

    from brainldm.testing.fixtures import stable_diffusion_parts

    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    StableDiffusionImg2ImgPipeline(**stable_diffusion_parts(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False).save_pretrained(folder / "CompVis/stable-diffusion-v1-4")
    (folder / "torchvision").mkdir()
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), folder / "torchvision/alexnet-owt-7be5be79.pth")
    return folder


@pytest.fixture
def isolated_models(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf_hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def test_check_runs_every_found_model_once(tiny_model_folder, isolated_models):
    from brainldm.book import check

    assert check.verify_model("sd-v1-4", tiny_model_folder) == []
    # random weights under the published file name: the sha256 in the name gives them away; the network runs
    problems = check.verify_model("alexnet", tiny_model_folder)
    assert len(problems) == 1 and problems[0].startswith("weights file: its sha256 starts"), problems
    lines = check.model_lines(tiny_model_folder)
    assert any("sd-v1-4" in line and "loads and runs" in line for line in lines)


def test_a_tokenizer_without_its_vocabulary_is_reported(tiny_model_folder, isolated_models, tmp_path):
    import shutil

    from brainldm.book import check
    from brainldm.models import zoo

    models = tmp_path / "models"
    shutil.copytree(tiny_model_folder / "CompVis", models / "CompVis")
    vocabulary = models / "CompVis/stable-diffusion-v1-4/tokenizer/tokenizer.json"
    vocabulary.unlink()
    path, looked = zoo.search("sd-v1-4", models)
    assert path is None and "tokenizer/tokenizer.json" in looked[0]
    line = next(line for line in check.model_lines(models, verify=False) if "sd-v1-4" in line)
    assert "MISSING" in line
    # the file exists but holds no vocabulary: the search passes, the check's run does not
    (models / "CompVis/stable-diffusion-v1-4/tokenizer/vocab.json").write_text("{}")
    problems = check.verify_model("sd-v1-4", models)
    assert problems and problems[0].startswith(("tokenizer:", "loading:")), problems


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_tampered_torchvision_file_is_one_error(tiny_model_folder, isolated_models, tmp_path, damage):
    from brainldm.models import zoo

    models = tmp_path / "models"
    (models / "torchvision").mkdir(parents=True)
    raw = (tiny_model_folder / "torchvision/alexnet-owt-7be5be79.pth").read_bytes()
    (models / "torchvision/alexnet-owt-7be5be79.pth").write_bytes(
        raw[:len(raw) // 3] if damage == "truncate" else b"\x80\x04garbage" + raw[100:2000])
    with pytest.raises(BrainLDMError, match="could not load it"):
        zoo.load("alexnet", device="cpu", models=models)


def test_a_broken_world_weights_folder_is_one_error(tmp_path):
    import shutil

    from brainldm.models import world as world_zoo

    weights = tmp_path / "weights"
    shutil.copytree(world_zoo.weights_dir() / "vae", weights / "vae")
    (weights / "vae/diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BrainLDMError, match="cannot be loaded.*damaged"):
        world_zoo.load_world_model("vae", weights)
    (weights / "vae/config.json").write_text("{ not json")
    with pytest.raises(BrainLDMError, match="cannot be loaded"):
        world_zoo.load_world_model("vae", weights)


@pytest.mark.parametrize("call", ["fit_encoders", "roi_scores"])
def test_encoding_functions_check_their_statistics_parameters(call):
    from brainldm.fit import encoding
    from brainldm.errors import ParameterError

    with pytest.raises(ParameterError, match="fdr" if call == "fit_encoders" else "n_boot"):
        if call == "fit_encoders":
            encoding.fit_encoders(None, {}, fdr=1.5)
        else:
            encoding.roi_scores(None, {}, [], None, n_boot=0)


def test_damaged_torchvision_weights_that_still_load_are_flagged(tiny_model_folder, isolated_models, tmp_path):
    from brainldm.book import check
    from brainldm.models import zoo

    models = tmp_path / "models"
    (models / "torchvision").mkdir(parents=True)
    raw = bytearray((tiny_model_folder / "torchvision/alexnet-owt-7be5be79.pth").read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 64] = b"\0" * 64  # inside a tensor: torch's zip reader checks no CRC
    (models / "torchvision/alexnet-owt-7be5be79.pth").write_bytes(raw)
    with pytest.warns(UserWarning, match="sha256"):
        zoo.load("alexnet", device="cpu", models=models)
    assert any("sha256" in problem for problem in check.verify_model("alexnet", models))
