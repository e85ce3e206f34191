"""The NSD reader, on a fabricated tree with NSD's real names, keys, dtypes and 1-based conventions."""

import gzip
import shutil
import tracemalloc

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io

from brainldm.data.datasets import load_dataset, nsd
from brainldm.data.datasets.nsd_fabricate import N_REPEATS, FabricationSize, fabricate_nsd, fabricated_caption, known_raw_betas
from brainldm.errors import BrainLDMError

SESSIONS, TRIALS, SHAPE = 3, 30, (12, 14, 10)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd")
    fabricate_nsd(root, subjects=("subj01", "subj02"),
                  size=FabricationSize(n_sessions=SESSIONS, trials_per_session=TRIALS, shape=SHAPE, n_shared=6), seed=3)
    return root


@pytest.fixture
def root(tree, tmp_path, monkeypatch):
    """A private copy of the tree (tests may damage it), with every BRAINLDM_* location in tmp_path."""
    copy = shutil.copytree(tree, tmp_path / "nsd")
    monkeypatch.setenv("BRAINLDM_DATA", str(tmp_path / "home"))
    monkeypatch.setenv("BRAINLDM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BRAINLDM_NSD_ROOT", str(copy))
    return copy


def cache_files(root):
    return [p for p in (root.parent / "cache").rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def design(root, subject="subj01"):
    """Per trial of the whole experiment, the 0-based 73k id; and the 0-based shared ids (read with scipy)."""
    mat = scipy.io.loadmat(root / "nsddata/experiments/nsd/nsd_expdesign.mat")
    row = int(subject[-2:]) - 1
    ids = mat["subjectim"][row, mat["masterordering"].ravel().astype(int) - 1].astype(int) - 1
    return ids, mat["sharedix"].ravel().astype(int) - 1


def exposed_voxels(root, subject="subj01"):
    roi = root / f"nsddata/ppdata/{subject}/func1pt8mm/roi"
    streams = np.asarray(nib.load(roi / "streams.nii.gz").dataobj)
    general = np.asarray(nib.load(roi / "nsdgeneral.nii.gz").dataobj)
    return (streams > 0) | (general > 0), streams


def expected_raw(root, n_sessions=SESSIONS, subject="subj01"):
    """int16 betas of every trial at the exposed voxels, straight from the fabricator's formula."""
    ids, _ = design(root, subject)
    trials = np.arange(n_sessions * TRIALS)
    mask, _ = exposed_voxels(root, subject)
    return known_raw_betas(subject, trials, ids[trials], SHAPE)[:, mask], ids[trials]


def test_tree_has_nsd_file_names(tree):
    for relative in ["nsddata/experiments/nsd/nsd_expdesign.mat",
                     "nsddata/experiments/nsd/nsd_stim_info_merged.csv",
                     "nsddata/ppdata/subj01/func1pt8mm/roi/streams.nii.gz",
                     "nsddata/ppdata/subj01/func1pt8mm/roi/nsdgeneral.nii.gz",
                     "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session01.nii.gz",
                     "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session03.hdf5",
                     "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5",
                     "nsddata_stimuli/stimuli/nsd/annotations/captions_train2017.json",
                     "nsddata_stimuli/stimuli/nsd/annotations/captions_val2017.json"]:
        assert (tree / relative).is_file(), relative
    beta_dir = tree / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR"
    image = nib.load(beta_dir / "betas_session01.nii.gz")
    assert image.shape == SHAPE + (TRIALS,) and image.get_data_dtype() == np.int16
    with h5py.File(beta_dir / "betas_session01.hdf5") as f:  # trials first, then Z, Y, X
        assert f["betas"].shape == (TRIALS,) + SHAPE[::-1] and f["betas"].dtype == np.int16
    with h5py.File(tree / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5") as f:
        assert f["imgBrick"].dtype == np.uint8 and f["imgBrick"].shape[1:] == (32, 32, 3)
    mat = scipy.io.loadmat(tree / "nsddata/experiments/nsd/nsd_expdesign.mat")
    assert mat["subjectim"].shape[0] == 8 and mat["masterordering"].min() == 1  # 1-based
    streams = np.asarray(nib.load(tree / "nsddata/ppdata/subj01/func1pt8mm/roi/streams.nii.gz").dataobj)
    assert set(np.unique(streams)) == set(range(-1, 8))


def test_trials_map_to_images_and_betas_are_int16_over_300(root):
    data = load_dataset("nsd", subject="subj01", root=root, cache=False)
    raw, ids = expected_raw(root)
    np.testing.assert_array_equal(data.trial_image_ids(), ids)
    _, shared = design(root)
    is_test = np.isin(ids, shared)
    for split, rows in (("train", ~is_test), ("test", is_test)):
        betas, split_ids = data.betas(split)
        assert betas.dtype == np.float32 and betas.shape == (rows.sum(), data.n_voxels)
        np.testing.assert_array_equal(split_ids, ids[rows])
        np.testing.assert_allclose(betas, raw[rows] / 300.0, rtol=1e-6)
        np.testing.assert_array_equal(np.rint(betas * 300), raw[rows])


def test_test_split_is_the_shared_images_seen_in_the_loaded_sessions(root):
    ids, shared = design(root)
    for n_sessions in (1, SESSIONS):
        data = load_dataset("nsd", root=root, sessions=n_sessions, cache=False)
        seen = ids[:n_sessions * TRIALS]
        np.testing.assert_array_equal(data.image_ids("test"), np.intersect1d(seen, shared))
        np.testing.assert_array_equal(data.image_ids("train"), np.setdiff1d(seen, shared))
        assert len(data.betas("train")[1]) + len(data.betas("test")[1]) == n_sessions * TRIALS
    other = load_dataset("nsd", subject="subj02", root=root, cache=False)
    np.testing.assert_array_equal(other.image_ids("test"), data.image_ids("test"))  # shared by subjects
    assert not np.intersect1d(other.image_ids("train"), data.image_ids("train")).size


def test_repeats_are_averaged(root):
    data = load_dataset("nsd", root=root, cache=False)
    trials, trial_ids = data.betas("test")
    means, ids = data.betas("test", average=True)
    np.testing.assert_array_equal(ids, np.unique(trial_ids))
    assert np.all(np.unique(trial_ids, return_counts=True)[1] == N_REPEATS)  # all sessions: 3 repeats each
    for row, image in enumerate(ids):
        np.testing.assert_allclose(means[row], trials[trial_ids == image].mean(0), rtol=1e-5)
    assert not np.allclose(trials[trial_ids == ids[0]][0], means[0])  # repeats differ


def test_streams_rois_select_their_labels(root):
    data = load_dataset("nsd", root=root, cache=False)
    mask, streams = exposed_voxels(root)
    assert data.roi_names == list(nsd.STREAM_LABELS.values()) + ["nsdgeneral"]
    assert data.n_voxels == mask.sum()
    full, _ = data.betas("train")
    for label, name in nsd.STREAM_LABELS.items():
        selected = data.roi_mask(name)
        volume = np.asarray(data.to_volume(selected.astype(float), fill=0).dataobj)
        np.testing.assert_array_equal(volume == 1, streams == label)
        np.testing.assert_array_equal(data.betas("train", roi=name)[0], full[:, selected])
    early_or_ventral = data.roi_mask(["early", "ventral"])
    assert early_or_ventral.sum() == ((streams == 1) | (streams == 5)).sum()


def test_voxel_sets_and_user_roi_volumes(root, tmp_path):
    roi_dir = root / "nsddata/ppdata/subj01/func1pt8mm/roi"
    general = np.asarray(nib.load(roi_dir / "nsdgeneral.nii.gz").dataobj)
    data = load_dataset("nsd", root=root, voxels=("nsdgeneral",), cache=False)
    assert data.n_voxels == (general > 0).sum() and data.roi_names == ["nsdgeneral"]
    mine = np.zeros(SHAPE, dtype=np.int16)
    mine[0, :3, 0] = 1  # outside the visual voxels: a user ROI adds its voxels
    path = tmp_path / "mine.nii.gz"
    nib.save(nib.Nifti1Image(mine, np.eye(4)), path)
    both = load_dataset("nsd", root=root, voxels=("nsdgeneral", "mine"), rois={"mine": path}, cache=False)
    assert both.n_voxels == data.n_voxels + 3 and both.roi_mask("mine").sum() == 3
    ids, shared = design(root)
    ids = ids[:SESSIONS * TRIALS]
    raw = known_raw_betas("subj01", np.arange(ids.size), ids, SHAPE)[~np.isin(ids, shared)]
    np.testing.assert_array_equal(np.rint(both.betas("train", roi="mine")[0] * 300), raw[:, 0, :3, 0])


def test_nii_and_hdf5_give_identical_betas(root):
    from_nii = load_dataset("nsd", root=root, betas_format="nii", cache=False)
    from_hdf5 = load_dataset("nsd", root=root, betas_format="hdf5", cache=False)
    assert from_nii._files[0].path.name.endswith(".nii.gz") and from_hdf5._files[0].path.suffix == ".hdf5"
    for split in ("train", "test"):
        a, b = from_nii.betas(split), from_hdf5.betas(split)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_zscore_within_each_session(root):
    data = load_dataset("nsd", root=root, zscore=True, cache=False)
    raw, ids = expected_raw(root)
    sessions = (raw / 300.0).reshape(SESSIONS, TRIALS, -1)
    expected = ((sessions - sessions.mean(1, keepdims=True)) / sessions.std(1, keepdims=True)).reshape(raw.shape)
    is_test = np.isin(ids, design(root)[1])
    np.testing.assert_allclose(data.betas("train")[0], expected[~is_test], atol=1e-4)
    np.testing.assert_allclose(data.betas("test")[0], expected[is_test], atol=1e-4)


def test_images_read_only_the_rows_asked_for(root):
    data = load_dataset("nsd", root=root, cache=False)
    ids = np.array([9, 2, 9, 0])
    images = data.images(ids)
    with h5py.File(root / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5") as f:
        np.testing.assert_array_equal(images, np.stack([f["imgBrick"][i] for i in ids]))
        n_images = f["imgBrick"].shape[0]
    assert images.dtype == np.uint8 and images.shape == (4, 32, 32, 3)
    with pytest.raises(BrainLDMError, match="0-based 73k ids"):
        data.images([n_images])


def test_captions_are_joined_through_coco_ids(root, tmp_path):
    data = load_dataset("nsd", root=root, cache=False)
    info = pd.read_csv(root / "nsddata/experiments/nsd/nsd_stim_info_merged.csv").set_index("nsdId")
    ids = data.image_ids("test")
    assert set(info.loc[ids, "cocoSplit"]) <= {"train2017", "val2017"}
    ids = np.concatenate([ids, info.index[info["cocoSplit"] == "val2017"][:2]])  # both COCO splits
    for image, captions in zip(ids, data.captions(ids)):
        coco = info.loc[image, "cocoId"]
        assert coco != image
        assert captions == [fabricated_caption(coco, j) for j in range(5)]
    moved = shutil.move(root / "nsddata_stimuli/stimuli/nsd/annotations", tmp_path / "coco")
    with pytest.raises(BrainLDMError, match="captions_"):
        load_dataset("nsd", root=root, cache=False).captions(ids[:1])
    elsewhere = load_dataset("nsd", root=root, annotations=moved, cache=False)
    coco = info.loc[ids[0], "cocoId"]
    assert elsewhere.captions(ids[:1])[0][0] == fabricated_caption(coco, 0)


def test_to_volume_puts_values_back_on_the_subjects_grid(root):
    data = load_dataset("nsd", root=root, cache=False)
    mask, _ = exposed_voxels(root)
    values = np.arange(data.n_voxels, dtype=float)
    image = data.to_volume(values)
    volume = np.asarray(image.dataobj)
    assert isinstance(image, nib.Nifti1Image) and volume.shape == SHAPE
    np.testing.assert_array_equal(volume[mask], values)
    assert np.isnan(volume[~mask]).all()
    np.testing.assert_array_equal(image.affine, nib.load(
        root / "nsddata/ppdata/subj01/func1pt8mm/roi/streams.nii.gz").affine)
    with pytest.raises(BrainLDMError, match="voxel values"):
        data.to_volume(values[:-1])


def test_masked_betas_are_cached(root, monkeypatch):
    first = load_dataset("nsd", root=root)
    betas, ids = first.betas("train")
    assert len(cache_files(root)) == 1

    def unreadable(self):
        raise AssertionError("betas were read again instead of from the cache")

    monkeypatch.setattr(nsd._SessionFile, "chunks", unreadable)
    again = load_dataset("nsd", root=root)
    np.testing.assert_array_equal(again.betas("train")[0], betas)
    np.testing.assert_array_equal(again.betas("train")[1], ids)


def test_streaming_keeps_memory_near_a_few_trials(tmp_path, monkeypatch):
    shape, trials = (32, 32, 32), 150
    fabricate_nsd(tmp_path, size=FabricationSize(n_sessions=1, trials_per_session=trials, shape=shape, n_shared=6,
                                                 image_size=4))
    monkeypatch.setattr(nsd, "TRIAL_CHUNK", 5)
    session_bytes = trials * np.prod(shape) * 2  # int16, the whole volume
    for fmt in ("nii", "hdf5"):
        data = load_dataset("nsd", root=tmp_path, betas_format=fmt, cache=False)
        masked_bytes = trials * data.n_voxels * 4  # float32: the result, and one session's buffer
        tracemalloc.start()
        data._read_betas()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 2 * masked_bytes + session_bytes / 4, (fmt, peak, masked_bytes, session_bytes)


# --- bad input: one clear error each, nothing half-written to the cache ---------------
def test_missing_root(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLDM_NSD_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(BrainLDMError, match="BRAINLDM_NSD_ROOT") as error:
        load_dataset("nsd")
    assert str(tmp_path / "nowhere") in str(error.value)
    with pytest.raises(BrainLDMError, match="does not exist"):
        load_dataset("nsd", root=tmp_path / "elsewhere")


def test_missing_session_file(root):
    beta_dir = root / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR"
    for path in beta_dir.glob("betas_session02.*"):
        path.unlink()
    for sessions in (None, 3):
        with pytest.raises(BrainLDMError, match="missing session file") as error:
            load_dataset("nsd", root=root, sessions=sessions)
        assert "betas_session02.hdf5" in str(error.value) and "betas_session02.nii.gz" in str(error.value)
    assert load_dataset("nsd", root=root, sessions=1).sessions == [1]
    assert not cache_files(root)


def test_unknown_or_absent_subject(root):
    with pytest.raises(BrainLDMError, match="unknown NSD subject 'subj09'"):
        load_dataset("nsd", subject="subj09", root=root)
    with pytest.raises(BrainLDMError, match="no betas of subj03"):
        load_dataset("nsd", subject="subj03", root=root)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_hdf5(root, damage):
    path = root / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session02.hdf5"
    content = path.read_bytes()
    path.write_bytes(content[:len(content) // 2] if damage == "truncate" else b"not an hdf5 file" * 64)
    with pytest.raises(BrainLDMError, match="truncated or corrupt") as error:
        load_dataset("nsd", root=root, betas_format="hdf5").betas("train")
    assert str(path) in str(error.value)
    assert not cache_files(root)


def test_truncated_nifti_fails_midway_and_caches_nothing(root):
    path = root / "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session03.nii.gz"
    path.write_bytes(path.read_bytes()[:len(gzip.compress(b"")) + 400])
    data = load_dataset("nsd", root=root, betas_format="nii")  # headers still read; sessions 1-2 are fine
    with pytest.raises(BrainLDMError, match="truncated or corrupt"):
        data.betas("train")
    assert not cache_files(root)


def test_mask_shape_must_match_the_betas(root, tmp_path):
    path = root / "nsddata/ppdata/subj01/func1pt8mm/roi/nsdgeneral.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.int16), np.eye(4)), path)
    with pytest.raises(BrainLDMError, match=r"shape \(5, 5, 5\).*\(12, 14, 10\) grid"):
        load_dataset("nsd", root=root)
    assert load_dataset("nsd", root=root, voxels="streams").n_voxels > 0
    with pytest.raises(BrainLDMError, match="shape"):
        load_dataset("nsd", root=root, voxels="mine", rois={"mine": path})
    assert not cache_files(root)
