"""The ground truth of the world: oracle decoding and oracle reconstructions."""

import numpy as np
import pytest
import torch

from brainldm.models.ldm import SamplerSettings

from brainldm.errors import BrainLDMError
from brainldm.features.stimulus import stimulus_features
from brainldm.evaluate.truth import (by_true_tuning, decoding_against_oracle, early_cortex_diagnosis,
                                     identification_by_place, noise_ceiling_check, oracle_decoding, require_truth, truth_agreement,
                                     tuning_agreement)
from brainldm.generate.oracle import OracleComparison, oracle_reconstructions, reconstructions_against_oracle


def test_noise_free_responses_decode_better_than_measured_ones(world, tiny_models):
    # 200 training images: with the fixture's 40 the two decoders' test r differ by less than their noise
    larger = type(world)(subject="subj01", n_train=200, n_test=20)
    table = decoding_against_oracle(larger, tiny_models, [("z", "early")])
    row = table.iloc[0]
    assert row.pair == "z from early"
    assert row.oracle > row.measured
    assert row.fraction == pytest.approx(row.measured / row.oracle)
    r = oracle_decoding(larger, tiny_models, "z", "early")
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
    assert set(diagnosis.low_level["feature"]) == {"z", "c", "scene attributes", "without position and size"}
    for table in (diagnosis.noise_free, diagnosis.low_level, diagnosis.by_training_size):
        assert np.isfinite(table[["mean", "ci_low", "ci_high"]].to_numpy()).all()
        assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()
    # noise-free responses are predicted better than noisy ones could be: the attributes that
    # draw the scene predict the contrast energy in V2/V3 pRFs well
    energy = diagnosis.low_level.set_index(["feature", "roi"])["mean"]
    assert energy["scene attributes", "V3"] > 0.5
    curve = diagnosis.by_training_size
    assert list(curve["n_train"].unique()) == [20, 40]
    np.testing.assert_allclose(curve["mean"], curve["z"] - curve["c"], atol=1e-9)
    assert diagnosis.crossover("V1") in (None, 20, 40)
    means = diagnosis.means("low_level")
    assert means.loc["scene attributes", "V3"] == energy["scene attributes", "V3"]


def test_truth_agreement_counts(world):
    n = world.n_voxels
    tuning = world.ground_truth["tuning"]  # 0 low-level, 1 semantic, 2 spatial
    perfect = np.where(tuning == 0, 0, np.where(tuning == 1, 1, -1))
    out = truth_agreement(world, perfect, ["low-level", "semantic"])
    assert out["fraction"] == 1.0 and out["n"] == int((tuning < 2).sum())
    flipped = truth_agreement(world, np.where(perfect >= 0, 1 - perfect, -1), ["low-level", "semantic"])
    assert flipped["fraction"] == 0.0
    assert out["confusion"].to_numpy().trace() == out["n"]
    assert np.shape(perfect) == (n,)


def test_noise_ceiling_check_follows_the_simulated_ceilings(world):
    check = noise_ceiling_check(world)
    assert check.estimated.shape == check.true.shape == (world.n_voxels,)
    assert check.n_average == 3  # the world shows each test image three times
    assert check.r > 0.5 and check.true.min() >= 0 and check.true.max() <= 100
    summary = check.summary()
    assert summary["r (estimated, true)"] == check.r and summary["voxels"] == world.n_voxels


def test_by_true_tuning_averages_over_each_class(world):
    tuning = world.ground_truth["tuning"]  # 0 low-level, 1 semantic, 2 spatial
    values = {"class": tuning.astype(float), "half": np.where(tuning == 1, np.nan, 0.5)}
    table = by_true_tuning(world, values)
    assert table.loc["class", "low-level"] == 0 and table.loc["class", "semantic"] == 1
    assert table.loc["class", "semantic − low-level"] == 1
    assert table.loc["half", "low-level"] == 0.5 and np.isnan(table.loc["half", "semantic"])  # NaN: left out
    none = by_true_tuning(world, values, voxels=tuning == 0)
    assert np.isnan(none.loc["class", "semantic"]) and none.loc["class", "low-level"] == 0
    with pytest.raises(BrainLDMError, match="unknown tuning class"):
        by_true_tuning(world, values, classes=("low-level", "visual"))


def test_tuning_agreement_scores_the_significant_winners(world):
    from types import SimpleNamespace

    tuning = world.ground_truth["tuning"]
    r_z = np.where(tuning == 0, 0.5, 0.1)  # z wins the low-level voxels, c every other
    sig = tuning < 2  # spatial voxels: no model significant, left out
    results = {"z": SimpleNamespace(r=r_z, significant=sig), "c": SimpleNamespace(r=np.full_like(r_z, 0.3), significant=sig)}
    agreement = tuning_agreement(world, results, ("z", "c"), rois=["early", "ventral"])
    assert agreement.overall["fraction"] == 1.0 and agreement.overall["n"] == int(sig.sum())
    assert agreement.classes == ["low-level", "semantic"] and (agreement.winner[~sig] == -1).all()
    assert list(agreement.by_roi["roi"]) == ["early", "ventral"] and (agreement.by_roi["agreement"] == 1.0).all()
    assert "100.0% of" in agreement.describe()


def test_oracle_comparison_share_of_the_margin_over_chance():
    import pandas as pd

    index = pd.MultiIndex.from_tuples([("oracle", "z-only"), ("oracle", "zc"), ("s1", "zc"), ("s2", "zc")],
                                      names=["subject", "method"])
    table = pd.DataFrame({"CLIP early": [0.7, 0.9, 0.7, 0.8]}, index=index)
    share = OracleComparison(table, {}).share()
    assert share["CLIP early"] == pytest.approx((0.75 - 0.5) / (0.9 - 0.5))


def test_reconstructions_against_the_oracle(world, tiny_models):
    comparison = reconstructions_against_oracle(world, tiny_models, ["subj01"],
                                                SamplerSettings(num_inference_steps=2, n_samples=1), n_images=3,
                                                n_shown=2)
    table = comparison.identification
    assert list(table.index) == [("oracle", "z-only"), ("oracle", "zc"), ("subj01", "zc")]
    assert table.to_numpy().min() >= 0 and table.to_numpy().max() <= 1
    assert list(comparison.panels) == ["seen", "oracle X_z", "oracle X_zc", "subj01 X_zc"]
    assert all(len(rows) == 2 for rows in comparison.panels.values())



def test_identification_by_place_splits_each_image_s_distractors_by_place(world, tiny_models):
    """Same-place and other-place identification, weighted by their distractors, give back the usual score."""
    from brainldm.evaluate.metrics import identification_scores
    from brainldm.generate.reconstruction import SubjectReconstructions

    settings = SamplerSettings(num_inference_steps=2, n_samples=1, batch_size=8)
    recons = SubjectReconstructions([world], tiny_models, settings)
    by_place = identification_by_place(tiny_models, recons, columns=("CNN early",))
    scores = by_place.scores
    ids, recon = recons.reconstruct(world)
    place = world.scenes(ids).place
    n_same = (place[:, None] == place[None, :]).sum(1) - 1
    assert set(scores["method"]) == {"z-only", "c-only"} and set(scores["subject"]) == {"subj01"}
    for method, key in (("z-only", "X_z"), ("c-only", "X_c")):
        rows = scores[scores["method"] == method].pivot(index="image", columns="metric", values="score")
        rows = rows.reindex(ids).fillna(0.0)  # an image alone in its place has no same-place row
        both = (rows["CNN early, same place"] * n_same + rows["CNN early, other place"] * (len(ids) - 1 - n_same))
        overall = identification_scores(tiny_models, world.images(ids), recon[key], {"CNN early": ("cnn", "early")})
        np.testing.assert_allclose(both / (len(ids) - 1), overall["CNN early"])
    assert ((scores["metric"] == "CNN early, same place").sum() == 2 * (n_same > 0).sum())
    table = by_place.table()  # z-only against c-only, paired over images
    assert list(table.columns) == ["metric", "c-only", "z-only", "change", "ci_low", "ci_high"]
    other = table.set_index("metric").loc["CNN early, other place"]
    by_method = scores[scores["metric"] == "CNN early, other place"].groupby("method")["score"].mean()
    np.testing.assert_allclose([other["z-only"], other["c-only"], other["change"]],
                               [by_method["z-only"], by_method["c-only"], by_method["z-only"] - by_method["c-only"]])
    assert "CNN early, other place" in by_place.describe()
