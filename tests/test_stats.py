import numpy as np
import pytest

from brainldm.data.noise import average_repeats, ncsnr_from_repeats, noise_ceiling


def test_average_repeats_groups_rows_by_id():
    betas = np.array([[1.0, 10], [3, 30], [5, 50], [7, 70]], np.float32)
    means, ids = average_repeats(betas, np.array([4, 2, 4, 2]))
    np.testing.assert_array_equal(ids, [2, 4])
    np.testing.assert_allclose(means, [[5, 50], [3, 30]])


def test_noise_ceiling_formula():
    # ncsnr 1: a single trial is half signal; three averaged trials are 75% explainable
    np.testing.assert_allclose(noise_ceiling([1.0], 1), [50.0])
    np.testing.assert_allclose(noise_ceiling([1.0], 3), [75.0])
    np.testing.assert_allclose(noise_ceiling([0.0], 3), [0.0])


def test_ncsnr_recovers_the_simulated_ratio(rng):
    true = np.array([0.0, 0.3, 1.0, 2.0])
    n_images, n_repeats = 3000, 3
    signal = rng.standard_normal((n_images, true.size)) * true
    ids = np.repeat(np.arange(n_images), n_repeats)
    betas = signal[ids] + rng.standard_normal((ids.size, true.size))
    estimate = ncsnr_from_repeats(betas, ids)
    np.testing.assert_allclose(estimate[1:], true[1:], atol=0.05)
    assert estimate[0] < 0.2  # clipped at zero, so a silent voxel's estimate is slightly positive


def test_ncsnr_needs_repeats():
    with pytest.raises(ValueError, match="at least twice"):
        ncsnr_from_repeats(np.zeros((3, 2)), np.arange(3))


def test_noise_ceiling_table_defaults_to_the_streams(world):
    from brainldm.data.anatomy import STREAMS
    from brainldm.data.noise import noise_ceiling_table

    table = noise_ceiling_table([world, world.with_subject("subj02")])
    assert list(table["roi"][:len(STREAMS)]) == list(STREAMS) and set(table["subject"]) == {"subj01", "subj02"}
    early = table[(table["subject"] == "subj01") & (table["roi"] == "early")].iloc[0]
    assert early["n_voxels"] == world.roi_mask("early").sum()
    assert early["median"] == pytest.approx(np.median(world.noise_ceiling("test", roi="early", n_average=3)))
    assert (table["q25"] <= table["median"]).all() and (table["median"] <= table["q75"]).all()
    assert "true_median" in table  # the world knows its simulated ncsnr


def test_mean_sd():
    from brainldm.data.noise import mean_sd

    assert mean_sd(0.74321, 0.0168) == "0.743 ± 0.017"
    assert mean_sd(0.5, float("nan"), digits=2) == "0.50 ± –"
