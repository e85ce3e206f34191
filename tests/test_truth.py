"""The ground truth of the world: oracle decoding and oracle reconstructions."""

import numpy as np
import pytest
import torch

from brainldm.models.ldm import SamplerSettings

from brainldm.errors import BrainLDMError
from brainldm.features.stimulus import stimulus_features
from brainldm.evaluate.truth import decoding_against_oracle, early_cortex_diagnosis, oracle_decoding, oracle_reconstructions, require_truth


def test_noise_free_responses_decode_better_than_measured_ones(world, tiny_models):
    table = decoding_against_oracle(world, tiny_models, [("z", "early")])
    row = table.iloc[0]
    assert row.oracle > row.measured
    assert row.fraction == pytest.approx(row.measured / row.oracle)
    r = oracle_decoding(world, tiny_models, "z", "early")
    assert r.shape == (int(np.prod(tiny_models.latent_shape())),)


def test_oracle_reconstructions_use_the_true_features_of_the_test_images(world, tiny_models):
    ids, recon = oracle_reconstructions(world, tiny_models, SamplerSettings(num_inference_steps=2, n_samples=2), n_images=3)
    np.testing.assert_array_equal(ids, world.image_ids("test")[:3])
    size = tiny_models.resolution
    assert recon["X_z"].shape == (3, size, size, 3)
    assert recon["X_zc"].shape == recon["X_c"].shape == (3, 2, size, size, 3)
    # X_z is the VAE's reconstruction of the seen image from its true latent (up to one grey level:
    # a batch decoded on another thread count rounds a few pixels the other way)
    z = stimulus_features(world, tiny_models, "z", ids)
    expected = tiny_models.ldm.decode(torch.from_numpy(z.reshape((-1,) + tiny_models.latent_shape())))
    np.testing.assert_allclose(recon["X_z"].astype(int), expected.astype(int), atol=1, rtol=0)
    assert (recon["X_z"] != expected).mean() < 1e-3


def test_only_the_world_has_a_truth():
    class Measured:
        name = "nsd"
        has_ground_truth = False

    with pytest.raises(BrainLDMError, match="only for the simulated world"):
        require_truth(Measured())


def test_early_cortex_diagnosis_measures_what_each_feature_carries(world, tiny_models):
    diagnosis = early_cortex_diagnosis(world, tiny_models, n_components=8, sizes=(20, 40), n_boot=20)
    features = set(diagnosis.noise_free["feature"])
    assert features == {"z", "c", "z (PCA 8)", "c (PCA 8)", "c + position"}
    assert set(diagnosis.noise_free["roi"]) == {"V1", "V2", "V3", "ventral"}
    assert set(diagnosis.contrast_energy["feature"]) == {"z", "c", "scene attributes", "without position and size"}
    for table in (diagnosis.noise_free, diagnosis.contrast_energy, diagnosis.by_training_size):
        assert np.isfinite(table[["mean", "ci_low", "ci_high"]].to_numpy()).all()
        assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()
    # noise-free responses are predicted better than noisy ones could be: the attributes that
    # draw the scene predict the contrast energy in V2/V3 pRFs well
    energy = diagnosis.contrast_energy.set_index(["feature", "roi"])["mean"]
    assert energy["scene attributes", "V3"] > 0.5
    curve = diagnosis.by_training_size
    assert list(curve["n_train"].unique()) == [20, 40]
    np.testing.assert_allclose(curve["mean"], curve["z"] - curve["c"], atol=1e-9)
    assert diagnosis.crossover("V1") in (None, 20, 40)
