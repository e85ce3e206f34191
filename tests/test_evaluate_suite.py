"""The standard reconstruction metrics on cases with known answers."""

import numpy as np

from brainldm.evaluate.metrics import bootstrap_ci, pixcorr, score_table, shuffled, ssim, two_way_identification


def _images(rng, n=6, size=16):
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_pixcorr_of_identical_and_inverted_images(rng):
    images = _images(rng)
    np.testing.assert_allclose(pixcorr(images, images), 1.0)
    np.testing.assert_allclose(pixcorr(images, 255 - images), -1.0)
    # samples are averaged: one perfect and one inverted sample give 0
    np.testing.assert_allclose(pixcorr(images, np.stack([images, 255 - images], 1)), 0.0, atol=1e-12)


def test_ssim_is_one_for_identical_images_and_lower_for_noise(rng):
    images = _images(rng)
    np.testing.assert_allclose(ssim(images, images), 1.0)
    assert (ssim(images, _images(np.random.default_rng(1))) < 0.2).all()


def test_shuffled_moves_every_image(rng):
    images = _images(rng, n=5)
    moved = shuffled(images)
    assert not any(np.array_equal(a, b) for a, b in zip(images, moved))
    assert sorted(map(bytes, moved)) == sorted(map(bytes, images))


def test_bootstrap_ci_brackets_the_mean(rng):
    mean, low, high = bootstrap_ci(np.full(20, 0.7))
    np.testing.assert_allclose([mean, low, high], 0.7)
    mean, low, high = bootstrap_ci(rng.normal(0.6, 0.1, 200))
    assert low < mean < high and high - low < 0.05


def test_identification_of_perfect_and_swapped_reconstructions(rng):
    features = rng.normal(size=(8, 30))
    np.testing.assert_allclose(two_way_identification(features, features), 1.0)
    # a reconstruction anti-correlated with its image loses to every other one
    np.testing.assert_allclose(two_way_identification(features, -features), 0.0)


def test_score_table_has_chance_levels(rng):
    table = score_table({"PixCorr": rng.random(10), "CNN late": rng.random(10)},
                        chance={"PixCorr": np.zeros(10)}, subject="subj01")
    assert list(table["metric"]) == ["PixCorr", "CNN late"]
    assert list(table["chance"]) == [0.0, 0.5]
    assert (table["subject"] == "subj01").all()
    assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()


# --- identification in networks' feature spaces, and the scores of several subjects ---------

class _Net:
    """A stand-in feature network: fixed nonlinear maps of the pixels, one per layer; counts its calls."""

    maps = {"early": lambda x: x, "middle": lambda x: x ** 2, "late": lambda x: np.sin(x / 40),
            "embedding": lambda x: np.cos(x / 30)}

    def __init__(self):
        self.calls = 0

    def __call__(self, images, layers):
        self.calls += 1
        x = np.asarray(images, np.float64).reshape(len(images), -1)
        return {layer: self.maps[layer](x) for layer in layers}


def _models():
    from types import SimpleNamespace

    return SimpleNamespace(name="fake", feature_nets={"clip": _Net(), "cnn": _Net(), "inception": _Net()})


def test_column_correlations_run_each_net_once_and_give_the_identification(rng):
    from brainldm.evaluate.metrics import (IDENTIFICATION_COLUMNS, column_correlations, identification_correlations,
                                           identification_from_correlations, identification_scores)

    models, orig = _models(), _images(rng, n=5, size=8)
    gen = np.stack([orig, _images(rng, n=5, size=8)], axis=1)  # sample 0 perfect, sample 1 noise
    seen = {}
    r = column_correlations(models, orig, gen, orig_features=seen)
    assert list(r) == list(IDENTIFICATION_COLUMNS) and r["CNN mid"].shape == (2, 5, 5)
    assert all(net.calls == 2 for net in models.feature_nets.values())  # seen images once, samples once
    expected = identification_correlations(_Net.maps["middle"](orig.reshape(5, -1).astype(float)),
                                           _Net.maps["middle"](gen.reshape(5, 2, -1).astype(float)))
    np.testing.assert_allclose(r["CNN mid"], expected)
    np.testing.assert_allclose(r["CNN mid"][0].diagonal(), 1.0)  # the perfect sample
    column_correlations(models, orig, gen, orig_features=seen)
    assert all(net.calls == 3 for net in models.feature_nets.values())  # the seen images' features were reused
    scores = identification_scores(models, orig, gen, rule="per_sample")
    for column in IDENTIFICATION_COLUMNS:
        np.testing.assert_allclose(scores[column], identification_from_correlations(r[column], "per_sample"))


def test_match_size_resizes_only_other_sizes(rng):
    from brainldm.evaluate.metrics import match_size

    orig = _images(rng, n=3, size=16)
    same = match_size(orig, orig)
    assert same.shape == (3, 1, 16, 16, 3)
    np.testing.assert_array_equal(same[:, 0], orig)
    small = match_size(orig, np.stack([_images(rng, n=3, size=8)] * 2, axis=1))
    assert small.shape == (3, 2, 16, 16, 3) and small.dtype == np.uint8


def test_evaluate_subjects_scores_every_subject_and_summarises_them(rng):
    from brainldm.evaluate.metrics import IDENTIFICATION_COLUMNS, SUITE_METRICS, evaluate_subjects

    def subject(seed):
        orig = _images(np.random.default_rng(seed), n=6, size=16)
        noise = _images(np.random.default_rng(seed + 100), n=6, size=16)
        mixed = (0.6 * orig + 0.4 * noise).astype(np.uint8)
        return orig, {"X_z": orig, "X_c": np.stack([noise, noise[::-1]], 1), "X_zc": mixed[:, None]}

    models = _models()
    scores = evaluate_subjects(models, [(name, *subject(seed)) for seed, name in enumerate(["s1", "s2"])])
    assert scores.subjects == ["s1", "s2"] and scores.methods == ["z-only", "c-only", "zc"]
    assert scores.n_images == {"s1": 6, "s2": 6} and scores.n_samples == 2
    assert scores.describe().startswith("6 test images, 2 sample(s) each, 2 subject(s) (s1, s2)")
    # identification per (method, subject): a perfect reconstruction wins against every other image
    wide = scores.identification()
    assert list(wide.columns) == list(IDENTIFICATION_COLUMNS)
    assert list(wide.index) == [(m, s) for m in ("z-only", "c-only", "zc") for s in ("s1", "s2")]
    np.testing.assert_allclose(wide.loc["z-only"], 1.0)
    # the mean over subjects is the mean of the subjects' rows, in the order of the metrics asked for
    mean = scores.over_subjects(["SSIM", "PixCorr", "not scored"])
    assert list(mean["metric"]) == ["SSIM"] * 3 + ["PixCorr"] * 3
    rows = scores.table[(scores.table["metric"] == "SSIM") & (scores.table["method"] == "zc")]
    np.testing.assert_allclose(mean.iloc[2][["mean", "ci_low", "ci_high", "chance"]].astype(float),
                               rows[["mean", "ci_low", "ci_high", "chance"]].mean())
    assert (mean["ci_low"] <= mean["mean"]).all() and (mean["mean"] <= mean["ci_high"]).all()
    winners = scores.winners(SUITE_METRICS)
    assert list(winners.index) == ["PixCorr", "SSIM", "AlexNet(2)", "AlexNet(5)", "Inception", "CLIP"]
    assert (winners["best"] == "z-only").all()  # no distance networks here: every metric is higher-is-better
    np.testing.assert_allclose(winners.loc["PixCorr", "z-only"], 1.0)


def test_winners_take_the_lowest_distance():
    import pandas as pd

    from brainldm.evaluate.metrics import ReconstructionScores

    table = pd.DataFrame({"method": ["a", "b", "a", "b"], "subject": "s1", "metric": ["SwAV", "SwAV", "CLIP", "CLIP"],
                          "mean": [0.3, 0.2, 0.7, 0.9], "ci_low": 0.0, "ci_high": 1.0, "chance": 0.5})
    winners = ReconstructionScores(table, {"s1": 10}, 1).winners()
    assert winners.loc["SwAV", "best"] == "b" and winners.loc["CLIP", "best"] == "b"
    table.loc[1, "mean"] = 0.4
    assert ReconstructionScores(table, {"s1": 10}, 1).winners().loc["SwAV", "best"] == "a"


def test_identification_among_some_distractors_counts_only_them():
    """``among`` restricts each image's distractors (e.g. to images of the same place), under every rule."""
    from brainldm.evaluate.metrics import identification_from_correlations

    # image 0's own reconstruction beats image 1's but not image 2's or 3's
    mean = np.array([[0.5, 0.2, 0.9, 0.9], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    r = mean[None]
    np.testing.assert_allclose(identification_from_correlations(r)[0], 1 / 3)
    group = np.array([0, 0, 1, 1])
    same = group[:, None] == group[None, :]
    for rule in ("authors", "per_sample", "best_sample"):
        np.testing.assert_allclose(identification_from_correlations(r, rule, among=same), [1, 1, 1, 1])
        np.testing.assert_allclose(identification_from_correlations(r, rule, among=~same), [0, 1, 1, 1])
        assert np.isnan(identification_from_correlations(r, rule, among=np.eye(4, dtype=bool))).all()  # none left
    r = np.round(np.random.default_rng(0).normal(size=(3, 6, 6)), 1)  # rounded: some ties
    brute = [np.mean([np.mean([(r[k, i, i] > r[k, i, j]) + 0.5 * (r[k, i, i] == r[k, i, j]) for j in range(6) if j != i])
                      for k in range(3)]) for i in range(6)]
    np.testing.assert_allclose(identification_from_correlations(r, "per_sample"), brute)  # the default: all others
