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
