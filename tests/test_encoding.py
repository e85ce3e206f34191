"""Voxelwise encoding models: known answers on synthetic data, and the world end to end."""

import numpy as np
import pytest

from brainldm.fit.encoding import ENCODING_ALPHAS, EncodingData, EncodingRecipe, KernelRidgeEncoder, best_feature, bh_fdr, encoding_data, fit_encoders, roi_scores, significant, variance_partition
from brainldm.errors import BrainLDMError
from brainldm.fit.ridge import GroupRidgeCV, RidgeRecipe


def synthetic(rng, n_train=120, n_test=60, n_voxels=30, noise=1.0):
    """Two feature blocks; voxels 0-9 driven by A, 10-19 by B, 20-29 by nothing."""
    n = n_train + n_test
    A = rng.standard_normal((n, 8))
    B = rng.standard_normal((n, 40))
    Y = noise * rng.standard_normal((n, n_voxels))
    Y[:, :10] += A @ rng.standard_normal((8, 10))
    Y[:, 10:20] += B @ rng.standard_normal((40, 10)) / np.sqrt(5)
    data = EncodingData(subject="synthetic", train_ids=np.arange(n_train), Y_train=Y[:n_train].astype(np.float32),
                        test_ids=np.arange(n_train, n), Y_test=Y[n_train:].astype(np.float32),
                        noise_ceiling=np.full(n_voxels, 50.0))
    return data, A.astype(np.float32), B.astype(np.float32)


def gcv_by_hand(K, y, alpha):
    """GCV error from the explicit hat matrix of centred kernel ridge."""
    n = len(y)
    H = K @ np.linalg.inv(K + alpha * np.eye(n))
    residual = (y - y.mean()) - H @ (y - y.mean())
    return n * (residual ** 2).sum() / (n - 1 - np.trace(H)) ** 2


def test_gcv_scores_match_the_hat_matrix_formula(rng):
    X = rng.standard_normal((40, 15)).astype(np.float32)
    Y = rng.standard_normal((40, 3)).astype(np.float32)
    alphas = np.array([0.1, 1.0, 10.0])
    model = KernelRidgeEncoder(alphas=alphas).fit(X, Y)
    Xs = (X - X.mean(0)) / (X.std(0) * np.sqrt(X.shape[1]))
    K = (Xs @ Xs.T).astype(np.float64)
    for i, alpha in enumerate(alphas):
        for v in range(3):
            assert model.cv_scores_[i, v] == pytest.approx(gcv_by_hand(K, Y[:, v].astype(np.float64), alpha), rel=1e-3)
    assert np.all(model.best_alphas_ == alphas[model.cv_scores_.argmin(0)])


def test_kfold_matches_group_ridge_cv_exactly(rng):
    """cv=K gives GroupRidgeCV's predictions: alpha a on the normalised kernel = a * n_features there."""
    X = rng.standard_normal((90, 120)).astype(np.float32)
    Y = (X[:, :5] @ rng.standard_normal((5, 6)) + rng.standard_normal((90, 6))).astype(np.float32)
    X_test = rng.standard_normal((20, 120)).astype(np.float32)
    groups = np.arange(90)
    alphas = np.logspace(-2, 3, 6)
    ours = KernelRidgeEncoder(alphas=alphas, cv=5, random_state=3).fit(X, Y, groups=groups)
    engine = GroupRidgeCV(RidgeRecipe(alphas=alphas * X.shape[1], n_folds=5, random_state=3), solver="kernel",
                          progress=False).fit(X, Y, groups=groups)
    np.testing.assert_allclose(ours.best_alphas_ * X.shape[1], engine.best_alphas_)
    np.testing.assert_allclose(ours.predict(X_test), engine.predict(X_test), rtol=1e-3, atol=1e-3)


def test_encoders_find_the_driving_feature(rng):
    data, A, B = synthetic(rng)
    results = fit_encoders(data, {"A": A, "B": B, "A+B": [A, B]}, progress=False)
    rA, rB, rAB = results["A"].r, results["B"].r, results["A+B"].r
    assert rA[:10].mean() > 0.6 and rB[10:20].mean() > 0.6
    assert rA[:10].mean() > rB[:10].mean() + 0.4 and rB[10:20].mean() > rA[10:20].mean() + 0.4
    assert np.abs(rA[20:]).mean() < 0.2  # no signal: r near 0
    assert rAB[:20].mean() > 0.6  # the joint model gets both
    # significance: driven voxels significant, noise voxels rarely
    assert results["A"].significant[:10].all() and results["B"].significant[10:20].all()
    assert results["A"].significant[20:].mean() <= 0.2
    winner, names = best_feature(results, ["A", "B"])
    assert (np.array(names)[winner[:10]] == "A").all() and (np.array(names)[winner[10:20]] == "B").all()
    # r normalised by the noise ceiling: sqrt(50 %) = 0.707
    np.testing.assert_allclose(results["A"].r_normalized, rA / np.sqrt(0.5))


def test_variance_partition_gives_unique_variance_to_the_right_block(rng):
    data, A, B = synthetic(rng, noise=0.5)
    results = fit_encoders(data, {"A": A, "B": B, "A+B": [A, B]}, progress=False)
    parts = variance_partition(results, "A", "B", "A+B")
    assert parts["unique A"][:10].mean() > 0.5 and abs(parts["unique A"][10:20].mean()) < 0.1
    assert parts["unique B"][10:20].mean() > 0.5 and abs(parts["unique B"][:10].mean()) < 0.1
    np.testing.assert_allclose(parts["unique A"] + parts["shared"], results["A"].r2)


def test_banded_ridge_weights_the_block_that_drives_each_voxel(rng):
    data, A, B = synthetic(rng, noise=0.5)
    n = len(data.train_ids)
    banded = KernelRidgeEncoder(banded=True, n_weights=5).fit([A[:n], B[:n]], data.Y_train)
    summed = KernelRidgeEncoder().fit([A[:n], B[:n]], data.Y_train)
    weights = banded.kernel_weights_
    assert weights.shape == (2, 30)
    np.testing.assert_allclose(weights.sum(0), 1.0, atol=1e-5)
    assert weights[0, :10].mean() > 0.8 and weights[1, 10:20].mean() > 0.8  # each voxel's own block
    np.testing.assert_allclose(summed.kernel_weights_, 0.5)
    r_banded = banded.score([A[n:], B[n:]], data.Y_test)
    r_summed = summed.score([A[n:], B[n:]], data.Y_test)
    assert r_banded[:20].mean() >= r_summed[:20].mean() - 0.01  # one penalty per block never costs much
    # fit_encoders uses it for joint models, and records the weights
    results = fit_encoders(data, {"A+B": [A, B]}, progress=False)
    assert results["A+B"].kernel_weights.shape == (2, 30)
    assert results["A+B"].kernel_weights[0, :10].mean() > 0.8
    assert fit_encoders(data, {"A": A}, progress=False)["A"].kernel_weights.shape == (1, 30)


def test_permutation_and_parametric_p_values_agree(rng):
    data, A, _ = synthetic(rng)
    para = fit_encoders(data, {"A": A}, progress=False)["A"]
    recipe = EncodingRecipe(test="permutation", n_permutations=400)
    perm = fit_encoders(data, {"A": A}, recipe=recipe, progress=False)["A"]
    np.testing.assert_allclose(perm.r, para.r)
    assert np.corrcoef(np.log(perm.p), np.log(para.p))[0, 1] > 0.8
    assert (perm.p[:10] < 0.01).all() and perm.p.min() >= 1 / 401


def test_bh_fdr_known_values():
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan])
    # sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.0533, 0.0533, 0.5
    np.testing.assert_allclose(bh_fdr(p), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5, np.nan])


def test_roi_scores_intervals_and_contrasts(rng, world):
    data = encoding_data(world)
    truth = world.true_signal(data.ids)  # a perfect "feature" for every voxel
    noise = rng.standard_normal(truth.shape).astype(np.float32)
    results = fit_encoders(data, {"truth": truth, "noise": noise}, progress=False)
    scores = roi_scores(data, results, ["early", "ventral"], world, n_boot=200)
    table = scores.table()
    good = table[table["feature"] == "truth"]
    assert (good["mean"] > 0.2).all() and (good["ci_low"] < good["mean"]).all() and (good["mean"] < good["ci_high"]).all()
    contrast = scores.contrast("truth", "noise")
    assert (contrast["ci_low"] > 0).all() and (contrast["verdict"] == "truth > noise").all()


def test_errors_say_what_to_fix(rng):
    data, A, _ = synthetic(rng)
    with pytest.raises(BrainLDMError, match="rows"):
        fit_encoders(data, {"A": A[:10]}, progress=False)
    with pytest.raises(BrainLDMError, match="cv"):
        KernelRidgeEncoder(cv=1).fit(A, A)
    with pytest.raises(BrainLDMError, match="not fitted"):
        KernelRidgeEncoder().predict(A)
    assert ENCODING_ALPHAS.min() > 0
    with pytest.raises(BrainLDMError, match="cv"):
        EncodingRecipe(cv=1)
    with pytest.raises(BrainLDMError, match="unknown test"):
        EncodingRecipe(test="bootstrap")


def test_bootstrap_scores_equal_direct_resampling(rng):
    """Weighted sums give the r and R² of each resample, even for nearly constant predictions."""
    from brainldm.fit.encoding import _boot_scores, _boot_weights
    from brainldm.fit.ridge import correlation_score

    Y = rng.standard_normal((50, 4)) * 10 + 100
    P = 100 + 1e-3 * (Y - 100) + 1e-4 * rng.standard_normal((50, 4))  # shrunk predictions
    W = _boot_weights(50, 5, seed=1)
    r = _boot_scores(W, Y, P, "r")
    r2 = _boot_scores(W, Y, P, "r2")
    for b in range(5):
        rows = np.repeat(np.arange(50), W[b].astype(int))
        np.testing.assert_allclose(r[b], correlation_score(Y[rows], P[rows]), atol=1e-3)
        direct = 1 - ((Y[rows] - P[rows]) ** 2).sum(0) / ((Y[rows] - Y[rows].mean(0)) ** 2).sum(0)
        np.testing.assert_allclose(r2[b], direct, atol=1e-3)


def test_encoders_run_on_the_device_brainldm_device_names(rng, monkeypatch):
    data, A, _ = synthetic(rng, n_train=40, n_test=10)
    monkeypatch.setenv("BRAINLDM_DEVICE", "cpu")
    model = KernelRidgeEncoder().fit(A[:40], data.Y_train)
    assert model.device_.type == "cpu" and model.dual_coef_.device.type == "cpu"
    monkeypatch.setenv("BRAINLDM_DEVICE", "no-such-device")
    with pytest.raises(BrainLDMError, match="unknown device 'no-such-device'"):
        KernelRidgeEncoder().fit(A[:40], data.Y_train)
    assert KernelRidgeEncoder(device="cpu").fit(A[:40], data.Y_train).predict(A[40:]).shape == (10, 30)


def test_one_significance_rule_q_at_most_the_fdr(rng):
    q = np.array([0.01, 0.05, 0.0500001, np.nan, 1.0])
    np.testing.assert_array_equal(significant(q, 0.05), [True, True, False, False, False])
    data, A, _ = synthetic(rng)
    result = fit_encoders(data, {"A": A}, fdr=0.1, progress=False)["A"]
    np.testing.assert_array_equal(result.significant, significant(result.q, 0.1))
    assert result.significant.sum() >= fit_encoders(data, {"A": A}, fdr=0.01, progress=False)["A"].significant.sum()


def test_encoding_recipe_keys_the_fit_and_replaces_fields(rng):
    recipe = EncodingRecipe(alphas=np.array([1, 10]))
    assert recipe.alphas == (1.0, 10.0) and recipe.replace(cv=None, banded=False).banded is False
    data, A, B = synthetic(rng, n_train=60, n_test=30)
    summed = fit_encoders(data, {"A+B": [A, B]}, recipe=EncodingRecipe(banded=False), progress=False)["A+B"]
    np.testing.assert_allclose(summed.kernel_weights, 0.5)  # no banded fit: equal shares
