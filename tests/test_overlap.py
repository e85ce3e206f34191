"""The overlap control: perceptual hashes, near-duplicate search, detector scores, id lists, re-scoring."""

import numpy as np
import pandas as pd
import pytest
import torch

from brainldm.generate import overlap
from brainldm.errors import BrainLDMError
from brainldm.models.loading import FeatureNet


def _images(n, size=32, seed=0):
    rng = np.random.default_rng(seed)
    # smooth random images (a few low-frequency blobs), like photographs rather than noise
    u, v = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size))
    out = np.zeros((n, size, size, 3))
    for i in range(n):
        for _ in range(4):
            cx, cy, r = rng.uniform(0, 1, 3)
            out[i] += rng.uniform(0, 255, 3) * np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (0.05 + 0.2 * r))[..., None]
    return np.clip(out / out.max() * 255, 0, 255).astype(np.uint8)


def test_dct_matrix_is_orthonormal():
    d = overlap._dct_matrix(16)
    np.testing.assert_allclose(d @ d.T, np.eye(16), atol=1e-12)


def test_phash_is_stable_under_resizing_and_separates_different_images():
    images = _images(6)
    hashes = overlap.phash(images)
    assert hashes.shape == (6, 64) and hashes.dtype == bool
    assert hashes.sum(1).min() >= 16  # about half the bits are set (median split)
    from brainldm.features.stimulus import resize_images

    again = overlap.phash(resize_images(resize_images(images, 48), 32))
    same = np.diag(overlap.hamming_distances(hashes, again))
    different = overlap.hamming_distances(hashes, hashes)[~np.eye(6, dtype=bool)]
    assert same.max() <= 6
    assert different.min() > same.max()


def test_hamming_distances_known_answer():
    a = np.array([[1, 0, 1, 0], [1, 1, 1, 1]], bool)
    b = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(overlap.hamming_distances(a, b), [[0, 4, 2], [2, 2, 4]])
    with pytest.raises(BrainLDMError):
        overlap.hamming_distances(a, b[:, :3])


def _signature(embeddings, hashes):
    e = np.asarray(embeddings, np.float32)
    return {"embedding": e / np.linalg.norm(e, axis=1, keepdims=True), "hash": np.asarray(hashes, bool)}


def test_near_duplicate_search_rules():
    rng = np.random.default_rng(0)
    pool = _signature(rng.standard_normal((50, 8)), rng.random((50, 64)) < 0.5)
    hashes = pool["hash"][[3, 10, 20]].copy()
    hashes[1, :2] ^= True  # 2 bits off
    hashes[2] = ~hashes[2]  # every bit off: similar embedding, different hash
    embeddings = pool["embedding"][[3, 10, 20]] + 0.01
    query = _signature(np.vstack([embeddings, rng.standard_normal((1, 8))]),
                       np.vstack([hashes, pool["hash"][[30]]]))  # last: same hash as 30, another embedding
    both = overlap.NearDuplicateSearch(0.99, 4, "both").fit(pool).search(query)
    np.testing.assert_array_equal(both["flagged"], [True, True, False, False])
    np.testing.assert_array_equal(both["match"], [3, 10, -1, -1])
    np.testing.assert_array_equal(both["min_hamming"][:2], [0, 2])
    np.testing.assert_array_equal(both["best_cosine_index"][:3], [3, 10, 20])
    either = overlap.NearDuplicateSearch(0.99, 4, "either").fit(pool).search(query)
    np.testing.assert_array_equal(either["flagged"], [True, True, True, True])
    by_hash = overlap.NearDuplicateSearch(0.99, 4, "phash").fit(pool).search(query)
    np.testing.assert_array_equal(by_hash["flagged"], [True, True, False, True])
    chunked = overlap.NearDuplicateSearch(0.99, 4, "both", chunk_size=1).fit(pool).search(query)
    np.testing.assert_array_equal(chunked["match"], both["match"])
    with pytest.raises(BrainLDMError, match="rule"):
        overlap.NearDuplicateSearch(rule="any").fit(pool)
    with pytest.raises(BrainLDMError, match="fit"):
        overlap.NearDuplicateSearch().search(query)


def test_detection_scores_counts():
    flagged = np.array([1, 1, 0, 0, 1], bool)
    truth = np.array([1, 0, 1, 0, 1], bool)
    s = overlap.detection_scores(flagged, truth)
    assert (s["true_positives"], s["false_positives"], s["false_negatives"]) == (2, 1, 1)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert np.isnan(overlap.detection_scores(np.zeros(3, bool), np.ones(3, bool))["precision"])


def test_threshold_sweep_recall_grows_with_looser_thresholds():
    rng = np.random.default_rng(1)
    pool = _signature(rng.standard_normal((40, 8)), rng.random((40, 64)) < 0.5)
    hashes = pool["hash"][:10].copy()
    for k in range(10):
        hashes[k, :k] ^= True  # k bits off
    query = _signature(pool["embedding"][:10], hashes)
    truth = np.ones(10, bool)
    sweep = overlap.threshold_sweep(query, pool, truth, cosine_thresholds=[0.99], hamming_thresholds=[0, 4, 9])
    np.testing.assert_allclose(sweep["recall"], [0.1, 0.5, 1.0])


def test_web_copies_are_deterministic_and_near_duplicates():
    images = _images(4, size=64)
    copies = overlap.web_copies(images, keys=[5, 6, 7, 8], seed=1)
    assert copies.shape == images.shape and copies.dtype == np.uint8
    assert not np.array_equal(copies, images)
    np.testing.assert_array_equal(copies[1:2], overlap.web_copies(images[1:2], keys=[6], seed=1))
    distance = overlap.hamming_distances(overlap.phash(images), overlap.phash(copies))
    others = np.where(np.eye(4, dtype=bool), 64, distance)
    assert (np.diag(distance) < others.min(0)).all()  # each copy is nearest its own original


def test_read_id_list_formats(tmp_path, monkeypatch):
    text = tmp_path / "ids.txt"
    text.write_text("# overlapping images\n12\n7\n\n3  # a comment\n")
    np.testing.assert_array_equal(overlap.read_id_list(text), [12, 7, 3])
    np.testing.assert_array_equal(overlap.read_id_list(text, "nsd1"), [11, 6, 2])
    table = tmp_path / "ids.csv"
    table.write_text("cocoId,nsdId\n100,4\n200,9\n")
    np.testing.assert_array_equal(overlap.read_id_list(table), [4, 9])
    bare = tmp_path / "bare.csv"
    bare.write_text("5,x\n6,y\n")
    np.testing.assert_array_equal(overlap.read_id_list(bare), [5, 6])

    class FakeNSD:
        def image_ids(self, split):
            return np.array([4, 9, 11])

        def coco_ids(self, ids):
            return np.array([100, 200, 300])[np.searchsorted([4, 9, 11], ids)], ["val2017"] * len(ids)

    np.testing.assert_array_equal(overlap.read_id_list(table, "coco", dataset=FakeNSD()), [4, 9])
    bad = tmp_path / "bad.txt"
    bad.write_text("1\nabc\n")
    with pytest.raises(BrainLDMError, match="abc"):
        overlap.read_id_list(bad)
    with pytest.raises(BrainLDMError, match="no list"):
        overlap.read_id_list(tmp_path / "missing.txt")
    with pytest.raises(BrainLDMError, match="start at 1"):
        zero = tmp_path / "zero.txt"
        zero.write_text("0\n")
        overlap.read_id_list(zero, "nsd1")


def test_load_pool_images(tmp_path):
    images = _images(3)
    np.save(tmp_path / "pool.npy", images)
    loaded, names = overlap.load_pool_images(tmp_path / "pool.npy")
    np.testing.assert_array_equal(loaded, images)
    assert names == ["0", "1", "2"]
    from PIL import Image

    folder = tmp_path / "pool"
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i}.png")
    loaded, names = overlap.load_pool_images(folder)
    np.testing.assert_array_equal(loaded, images)
    with pytest.raises(BrainLDMError):
        overlap.load_pool_images(tmp_path / "nothing.npz")


class _ToyModels:
    """A model set whose only feature net averages 4 x 4 pixel blocks."""

    def __init__(self):
        def forward(pixels):
            pooled = torch.nn.functional.avg_pool2d(pixels, 4)
            return {"early": pooled, "middle": pooled, "late": pooled, "embedding": pooled.mean((2, 3))}

        net = FeatureNet("toy", forward, ("early", "middle", "late", "embedding"), 32)
        self.feature_nets = {"clip": net, "cnn": net, "inception": net}


def test_rescore_without_recomputes_among_the_remaining_images():
    from brainldm.evaluate.metrics import identification_scores

    models = _ToyModels()
    seen = _images(8)
    others = _images(16, seed=1).reshape((8, 2) + seen.shape[1:]).astype(float)
    recon = (0.3 * seen[:, None] + 0.7 * others).astype(np.uint8)  # faint resemblance: identification < 1
    exclude = np.zeros(8, bool)
    exclude[[1, 6]] = True
    table = overlap.rescore_without(models, seen, recon, {"leaked": exclude}, subject="s")
    assert list(dict.fromkeys(table["images"])) == ["all", "without leaked", "leaked only"]
    assert set(table.loc[table["images"] == "without leaked", "n"]) == {6}
    ident = table[table["metric"] == "CNN early"].set_index("images")["mean"]
    columns = {"CNN early": ("cnn", "early")}
    full = identification_scores(models, seen, recon, columns)["CNN early"]
    among_rest = identification_scores(models, seen[~exclude], recon[~exclude], columns)["CNN early"]
    assert ident["all"] == pytest.approx(full.mean())
    assert ident["without leaked"] == pytest.approx(among_rest.mean())  # compared among the rest only
    assert ident["without leaked"] != pytest.approx(full[~exclude].mean())
    single = overlap.rescore_without(models, seen, recon, exclude)
    assert "without overlap" in set(single["images"])
    with pytest.raises(BrainLDMError):
        overlap.rescore_without(models, seen, recon, exclude[:5])
    with pytest.raises(BrainLDMError):
        overlap.rescore_without(models, seen, recon[:, 0], exclude)


def test_world_pool_holds_the_leaked_test_images():
    from brainldm.data.datasets.world.design import NSD_TEST_IMAGES, is_leaked
    from brainldm.data.datasets.world.scenes import render_scenes
    from brainldm.models.world import model_card

    card = model_card()["pool"]
    leaked = np.flatnonzero(is_leaked(np.arange(NSD_TEST_IMAGES), card["seed"]))
    last = card["n_fresh"] + len(leaked) - 1  # the pool ends with the leaked test images, in id order
    pool = overlap.world_pool_images([last], copies=False)
    test = render_scenes(leaked[-1:], seed=card["seed"], size=card["image_size"]).images
    np.testing.assert_array_equal(pool, test)
    copy = overlap.world_pool_images([last], copies=True)
    assert not np.array_equal(copy, test)
    assert overlap.hamming_distances(overlap.phash(copy), overlap.phash(test))[0, 0] <= 12


def test_resize_images_keeps_dtype_and_takes_rectangles_and_grey_maps():
    from brainldm.features.stimulus import resize_images

    images = _images(2, size=32)
    assert resize_images(images, 32) is images
    wide = resize_images(images, (16, 24))
    assert wide.shape == (2, 16, 24, 3) and wide.dtype == np.uint8
    grey = images.astype(np.float32).mean(-1)
    small = resize_images(grey, 16)
    assert small.shape == (2, 16, 16) and small.dtype == np.float32
    np.testing.assert_allclose(small.mean((1, 2)), grey.mean((1, 2)), rtol=5e-3)  # averaging keeps the mean
    np.testing.assert_allclose(small, resize_images(np.repeat(grey[..., None], 3, -1), 16)[..., 1])  # per channel
    flat = np.full((1, 20, 20, 3), 77, np.uint8)
    np.testing.assert_array_equal(resize_images(flat, (7, 9)), 77)


def _toy_detection():
    """Ten query images; 0-3 are in the pool (3 with its hash scrambled), 8 has a near twin there."""
    rng = np.random.default_rng(2)
    pool = _signature(rng.standard_normal((30, 8)), rng.random((30, 64)) < 0.5)
    pool.update(ids=np.arange(100, 130), position=np.arange(30) + 5)
    embeddings = rng.standard_normal((10, 8))
    hashes = rng.random((10, 64)) < 0.5
    embeddings[:4], hashes[:4] = pool["embedding"][[7, 8, 9, 10]], pool["hash"][[7, 8, 9, 10]]
    hashes[3] = ~hashes[3]  # a leak the hash misses
    embeddings[8], hashes[8] = pool["embedding"][20] + 0.001, pool["hash"][20]  # a false alarm
    query = {"ids": np.arange(50, 60), **_signature(embeddings, hashes)}
    truth = np.zeros(10, bool)
    truth[:4] = True
    search = overlap.NearDuplicateSearch(0.99, 4, "both")
    found = {"web copies": search.fit(pool).search(query)}
    return overlap.LeakDetection(query, {"web copies": pool}, truth, found, search)


def test_leak_detection_scores_outcomes_and_masks():
    detection = _toy_detection()
    row = detection.table.loc["web copies"]
    assert (row["true_positives"], row["false_positives"], row["false_negatives"]) == (3, 1, 1)
    assert row["precision"] == pytest.approx(0.75) and row["recall"] == pytest.approx(0.75)
    assert row["pool size"] == 30
    outcomes = detection.outcomes()
    np.testing.assert_array_equal(outcomes["found"], [0, 1, 2])
    np.testing.assert_array_equal(outcomes["missed"], [3])
    np.testing.assert_array_equal(outcomes["false alarm"], [8])
    np.testing.assert_array_equal(detection.partners([0, 3, 8]), [7 + 5, 10 + 5, 20 + 5])  # whole-pool positions
    masks = detection.test_masks([52, 53, 58])
    np.testing.assert_array_equal(masks["leaked"], [True, True, False])
    np.testing.assert_array_equal(masks["detected"], [True, False, True])
    with pytest.raises(BrainLDMError, match="not searched"):
        detection.test_masks([1])
    assert str(detection).startswith("4 of 10 test ids searched are in the 30-image training pool")
    sweep = detection.sweep([0.99], [4, 64])
    assert isinstance(sweep, overlap.ThresholdSweep)
    np.testing.assert_allclose(sweep.table["recall"], [0.75, 1.0])
    assert sweep.best["f1"] == sweep.table["f1"].max() and str(sweep).startswith("best F1 on this grid")


class _FakeDataset:
    """Test images ``ids`` (default 0 … n-1), the same for every subject."""

    name, has_training_pool = "fake", False

    def __init__(self, images, subject="s1", ids=None):
        self._images, self.subject = images, subject
        self._ids = np.arange(len(images)) if ids is None else np.asarray(ids)

    def image_ids(self, split):
        return self._ids

    def images(self, ids):
        return self._images[np.searchsorted(self._ids, ids)]

    def with_subject(self, subject):
        return _FakeDataset(self._images, subject, self._ids)


def test_overlap_exclusion_takes_the_best_source(tmp_path):
    images = _images(6)
    ds = _FakeDataset(images)
    models = _ToyModels()
    search = overlap.NearDuplicateSearch(0.99, 4, "both")
    nothing = overlap.overlap_exclusion(ds, models, search)
    assert nothing.masks == {} and str(nothing).startswith("excluded: nothing")
    listed = tmp_path / "ids.txt"
    listed.write_text("4\n1\n99\n")
    by_list = overlap.overlap_exclusion(ds, models, search, listed=listed)
    np.testing.assert_array_equal(by_list.masks["listed"], [0, 1, 0, 0, 1, 0])
    assert "listed: 2 of 6 test images" in str(by_list)
    np.save(tmp_path / "pool.npy", np.concatenate([images[[2, 5]], _images(3, seed=9)]))
    by_pool = overlap.overlap_exclusion(ds, models, search, pool=tmp_path / "pool.npy")
    np.testing.assert_array_equal(by_pool.masks["detected"], [0, 0, 1, 0, 0, 1])
    detection = _toy_detection()
    known = overlap.overlap_exclusion(_FakeDataset(_images(10), ids=np.arange(50, 60)), models, search, detection,
                                      listed=listed)
    np.testing.assert_array_equal(known.masks["leaked"], detection.truth)  # the known leaks come first
    np.testing.assert_array_equal(known.masks["detected"], detection.found["web copies"]["flagged"])


def _rescored_tables(models, n=8):
    seen = _images(n)
    exclude = np.zeros(n, bool)
    exclude[[0, 5]] = True
    tables = []
    for k, subject in enumerate(("s1", "s2")):
        others = _images(2 * n, seed=3 + k).reshape((n, 2) + seen.shape[1:]).astype(float)
        recon = (0.4 * seen[:, None] + 0.6 * others).astype(np.uint8)
        tables.append(overlap.rescore_without(models, seen, recon, {"leaked": exclude}, subject=subject))
    return seen, exclude, tables


def test_rescored_summaries_over_subjects():
    _, _, tables = _rescored_tables(_ToyModels())
    rescored = overlap.Rescored(pd.concat(tables, ignore_index=True))
    assert rescored.subsets == ["all", "without leaked", "leaked only"]
    summary = rescored.over_subjects()
    means = [t.set_index(["images", "metric"]).loc[("without leaked", "SSIM"), "mean"] for t in tables]
    assert summary.loc["without leaked", ("SSIM", "mean")] == pytest.approx(np.mean(means))
    assert summary.loc["without leaked", ("SSIM", "std")] == pytest.approx(np.std(means, ddof=1))
    bars = rescored.by_subset
    assert list(dict.fromkeys(bars["metric"])) == list(overlap.RESCORED_METRICS)
    assert list(bars["images"][:3]) == rescored.subsets
    inception = bars[(bars["metric"] == "Inception") & (bars["images"] == "all")].iloc[0]
    assert inception["mean"] == pytest.approx(summary.loc["all", ("Inception", "mean")])
    report = rescored.report_table()
    assert report.loc["all", "Inception"] == f"{summary.loc['all', ('Inception', 'mean')]:.3f} ± " \
                                             f"{summary.loc['all', ('Inception', 'std')]:.3f}"
    assert str(rescored).startswith("mean and s.d. over subjects")
    beside = rescored.inception()
    assert list(beside.columns) == list(overlap.report_inception().columns) and list(beside.index) == ["mean", "s.d."]
    assert beside.loc["mean", "without overlap"] == pytest.approx(summary.loc["without leaked", ("Inception", "mean")])
    only_all = overlap.Rescored(pd.concat(tables, ignore_index=True).query("images == 'all'"))
    assert list(only_all.inception().columns) == ["all test images"]


def test_rescore_subjects_reconstructs_and_rescores_every_subject(monkeypatch):
    models = _ToyModels()
    seen, exclude, tables = _rescored_tables(models)
    recon = {}
    for k, subject in enumerate(("s1", "s2")):
        others = _images(2 * len(seen), seed=3 + k).reshape((len(seen), 2) + seen.shape[1:]).astype(float)
        recon[subject] = (0.4 * seen[:, None] + 0.6 * others).astype(np.uint8)
    calls = []

    def fake_reconstructions(ds, models, settings=None):
        calls.append((ds.subject, settings))
        return ds.image_ids("test"), {"X_zc": recon[ds.subject]}, None

    monkeypatch.setattr(overlap, "brain_reconstructions", fake_reconstructions)
    exclusion = overlap.Exclusion({"leaked": exclude}, "a test")
    rescored = overlap.rescore_subjects(_FakeDataset(seen), ["s1", "s2"], models, exclusion, settings="S")
    assert calls == [("s1", "S"), ("s2", "S")]
    expected = pd.concat(tables, ignore_index=True)
    np.testing.assert_allclose(rescored.table["mean"], expected["mean"])
    assert list(rescored.table["subject"].unique()) == ["s1", "s2"]
    monkeypatch.setattr(overlap, "brain_reconstructions",
                        lambda ds, models, settings=None: (ds.image_ids("test")[:-1], None, None))
    with pytest.raises(BrainLDMError, match="differ"):
        overlap.rescore_subjects(_FakeDataset(seen), ["s1"], models, exclusion)


def test_detect_known_leaks_needs_a_training_pool():
    with pytest.raises(BrainLDMError, match="training pool"):
        overlap.detect_known_leaks(_FakeDataset(_images(2)), _ToyModels(), overlap.NearDuplicateSearch())


def test_detect_known_leaks_in_the_world_finds_every_exact_copy(world, tiny_models):
    import matplotlib.pyplot as plt

    from brainldm.data.datasets.world.design import is_leaked
    from brainldm.figures.overlap import leak_examples, precision_recall_lines, similarity_scatter
    from brainldm.models.world import model_card

    search = overlap.NearDuplicateSearch(0.95, 8, "both")
    detection = overlap.detect_known_leaks(world, tiny_models, search, n_search=60, n_fresh=20)
    np.testing.assert_array_equal(detection.query["ids"], np.arange(60))
    np.testing.assert_array_equal(detection.truth, is_leaked(np.arange(60), model_card()["pool"]["seed"]))
    assert detection.truth.any()
    exact = detection.table.loc["exact"]
    assert exact["recall"] == 1.0  # an exact copy has cosine 1 and hash distance 0
    assert exact["pool size"] == 20 + model_card()["pool"]["n_leaked_test_images"]  # fresh + every leaked one
    masks = detection.test_masks(world.image_ids("test"))
    np.testing.assert_array_equal(masks["leaked"], detection.truth[:10])
    assert len(similarity_scatter(detection).axes) == 2
    assert len(precision_recall_lines(detection.sweep([0.9, 0.95], [0, 8])).lines) == 2
    fig = leak_examples(world, detection, n_examples=3, pool="exact")
    assert fig is not None and fig.axes[0].get_ylabel() == "test"
    plt.close("all")
