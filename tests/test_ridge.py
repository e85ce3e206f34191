"""Tests of the grouped-CV ridge engine on small simulated decoding problems."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from brainldm.data.cache import ColumnBlocks
from brainldm.errors import BrainLDMError
from brainldm.fit.ridge import GroupRidgeCV, RidgeRecipe, correlation_score, group_kfold


def simulate(rng, n_images=200, n_repeats=3, n_features=30, n_targets=8, noise=0.5, offset=3.0):
    """Single trials ``X`` (image signal + trial noise) and ``Y = X_signal @ W + offset + noise``.

    ``noise`` may be an array of shape (n_targets,) to give every target its own noise level.
    """
    ids = np.repeat(rng.permutation(n_images) + 1000, n_repeats)
    W = rng.standard_normal((n_features, n_targets))
    signal = rng.standard_normal((n_images, n_features))
    X = signal[ids - 1000] + 0.1 * rng.standard_normal((ids.size, n_features))
    Y = X @ W + offset + rng.standard_normal((ids.size, n_targets)) * noise
    return X.astype(np.float32), Y.astype(np.float32), ids, W


def test_recovers_a_known_linear_map(rng):
    X, Y, ids, W = simulate(rng)
    model = GroupRidgeCV(RidgeRecipe(alphas=np.logspace(-2, 4, 7)), progress=False).fit(X, Y, ids)
    assert model.coef_.shape == W.shape and model.intercept_.shape == (W.shape[1],)
    assert np.abs(model.coef_ - W).max() < 0.05 * np.abs(W).max()
    assert np.allclose(model.intercept_, 3.0, atol=0.1)
    X_test, Y_test, _, _ = simulate(np.random.default_rng(1), n_images=50, n_repeats=1)
    # The test set has its own W, so score against the true map's predictions instead.
    assert correlation_score(X_test @ W, model.predict(X_test)).min() > 0.99


def test_noisier_targets_get_larger_alphas(rng):
    noise = np.repeat([0.1, 30.0], 6)
    X, Y, ids, _ = simulate(rng, n_targets=noise.size, noise=noise)
    model = GroupRidgeCV(RidgeRecipe(alphas=np.logspace(-2, 6, 9)), progress=False).fit(X, Y, ids)
    clean, noisy = np.log10(model.best_alphas_[:6]), np.log10(model.best_alphas_[6:])
    assert noisy.min() > clean.max()
    assert model.cv_scores_.shape == (9, noise.size)


def test_group_kfold_never_splits_a_group(rng):
    groups = rng.integers(0, 97, size=400)
    folds = group_kfold(groups, n_folds=5, random_state=0)
    assert len(folds) == 5
    seen = np.concatenate([val for _, val in folds])
    assert np.array_equal(np.sort(seen), np.arange(groups.size))
    n_groups = []
    for train, val in folds:
        assert np.intersect1d(groups[train], groups[val]).size == 0
        assert np.union1d(train, val).size == groups.size
        n_groups.append(np.unique(groups[val]).size)
    assert max(n_groups) - min(n_groups) <= 1
    # Seeded: the same seed gives the same folds, another seed other folds.
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, group_kfold(groups, 5, random_state=0)))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, group_kfold(groups, 5, random_state=1)))


@pytest.mark.parametrize("n_features, solver", [(30, "primal"), (700, "kernel")])
def test_agrees_with_sklearn_ridge_at_the_chosen_alpha(rng, n_features, solver):
    X, Y, ids, _ = simulate(rng, n_features=n_features, noise=np.linspace(0.5, 20, 8))
    model = GroupRidgeCV(RidgeRecipe(alphas=np.logspace(0, 5, 6)), progress=False).fit(X, Y, ids)
    assert model.solver_ == solver
    X_new = simulate(np.random.default_rng(1), n_images=40, n_repeats=1, n_features=n_features)[0]
    X_std = (X - X.mean(0)) / X.std(0)
    X_new_std = (X_new - X.mean(0)) / X.std(0)
    Y_pred = model.predict(X_new)
    for j, alpha in enumerate(model.best_alphas_):
        reference = Ridge(alpha=alpha).fit(X_std, Y[:, j]).predict(X_new_std)
        assert np.corrcoef(reference, Y_pred[:, j])[0, 1] > 0.999
        assert np.allclose(reference.mean(), Y_pred[:, j].mean(), atol=0.05 * Y[:, j].std())


def test_chunked_and_unchunked_fits_agree(rng):
    X, Y, ids, _ = simulate(rng, n_targets=10, noise=np.linspace(0.1, 20, 10))
    X_before, Y_before = X.copy(), Y.copy()
    whole = GroupRidgeCV(chunk_size=100, progress=False).fit(X, Y, ids)
    chunked = GroupRidgeCV(chunk_size=3, progress=False).fit(X, Y, ids)
    assert np.array_equal(whole.best_alphas_, chunked.best_alphas_)
    np.testing.assert_allclose(whole.coef_, chunked.coef_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(whole.cv_scores_, chunked.cv_scores_, atol=1e-5)
    assert np.array_equal(X, X_before) and np.array_equal(Y, Y_before), "fit must not modify its inputs"


def test_train_on_averages_fits_the_repeat_means(rng):
    X, Y, ids, W = simulate(rng)
    model = GroupRidgeCV(RidgeRecipe(alphas=[1.0], train_on="averages"), progress=False).fit(X, Y, ids)
    uniq = np.unique(ids)
    X_mean = np.stack([X[ids == i].mean(0) for i in uniq])
    Y_mean = np.stack([Y[ids == i].mean(0) for i in uniq])
    reference = Ridge(alpha=1.0).fit((X_mean - X_mean.mean(0)) / X_mean.std(0), Y_mean)
    np.testing.assert_allclose(model.coef_ * X_mean.std(0)[:, None], reference.coef_.T, rtol=1e-3, atol=1e-3)


def test_one_dimensional_y_gives_one_dimensional_predictions(rng):
    X, Y, ids, _ = simulate(rng)
    model = GroupRidgeCV(progress=False).fit(X, Y[:, 0], ids)
    assert model.predict(X).shape == (X.shape[0],)
    assert model.score(X, Y[:, 0]).shape == (1,)


def test_correlation_score_matches_numpy(rng):
    a, b = rng.standard_normal((2, 50, 4))
    b += a
    expected = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(4)]
    np.testing.assert_allclose(correlation_score(a, b), expected)


def test_bad_inputs_raise_clear_errors(rng):
    X, Y, ids, _ = simulate(rng, n_images=20)
    model = GroupRidgeCV(progress=False)
    with pytest.raises(BrainLDMError, match="one row per sample"):
        model.fit(X, Y[:-1], ids)
    with pytest.raises(BrainLDMError, match="one row per sample"):
        model.fit(X, Y, ids[:-1])
    with pytest.raises(BrainLDMError, match="at least 5 distinct groups"):
        model.fit(X[:9], Y[:9], ids[:9])
    X_nan = X.copy()
    X_nan[4, 2] = np.nan
    with pytest.raises(BrainLDMError, match="NaN"):
        model.fit(X_nan, Y, ids)
    Y_nan = Y.copy()
    Y_nan[0, 5] = np.inf
    with pytest.raises(BrainLDMError, match="target 5"):
        model.fit(X, Y_nan, ids)
    with pytest.raises(BrainLDMError, match="shape"):
        model.fit(X[:, :, None], Y, ids)
    with pytest.raises(BrainLDMError, match="not fitted"):
        GroupRidgeCV().predict(X)
    with pytest.raises(BrainLDMError, match="unknown train_on"):
        GroupRidgeCV(RidgeRecipe(train_on="mean")).fit(X, Y, ids)
    model.fit(X, Y, ids)
    with pytest.raises(BrainLDMError, match="fitted on 30"):
        model.predict(X[:, :10])


@pytest.mark.parametrize("n_features, train_on", [(30, "trials"), (30, "averages"), (200, "trials")])
def test_fit_predict_streams_chunks_and_predicts_as_fit_does(rng, tmp_path, n_features, train_on):
    """Targets read a chunk at a time from per-image tables, predictions written into a memory-mapped file."""
    X, _, ids, _ = simulate(rng, n_images=60, n_features=n_features)
    uniq, first, rows = np.unique(ids, return_index=True, return_inverse=True)
    tables = [rng.standard_normal((uniq.size, width)).astype(np.float32) for width in (5, 9)]
    tables[0] += X[first, :5]  # decodable targets beside noise
    paths = [tmp_path / f"table{k}.npy" for k in range(2)]
    for path, table in zip(paths, tables):
        np.save(path, table)
    Y = ColumnBlocks([np.load(path, mmap_mode="r") for path in paths], rows=rows)
    X_test = simulate(np.random.default_rng(1), n_images=20, n_repeats=1, n_features=n_features)[0]
    out = np.lib.format.open_memmap(tmp_path / "predicted.npy", mode="w+", dtype=np.float32, shape=(20, 14))

    kwargs = dict(recipe=RidgeRecipe(alphas=np.logspace(-1, 4, 6), train_on=train_on), progress=False)
    streamed = GroupRidgeCV(chunk_size=4, **kwargs)
    returned = streamed.fit_predict(X, Y, ids, X_test, out=ColumnBlocks([out]))
    assert not hasattr(streamed, "coef_")
    whole = GroupRidgeCV(chunk_size=100, **kwargs).fit(X, np.concatenate(tables, axis=1)[rows], ids)
    expected = whole.predict(X_test)
    predicted = np.load(tmp_path / "predicted.npy")
    assert np.array_equal(whole.best_alphas_, streamed.best_alphas_)
    assert correlation_score(expected, predicted).min() >= 0.9999
    np.testing.assert_allclose(predicted, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert isinstance(returned, ColumnBlocks) and returned.shape == (20, 14)


def test_correlation_score_reads_chunks_of_column_blocks(rng):
    a, b = rng.standard_normal((2, 30, 11))
    b += a
    chunked = correlation_score(ColumnBlocks([a[:, :4], a[:, 4:]]), ColumnBlocks([b]), chunk_size=3)
    np.testing.assert_allclose(chunked, correlation_score(a, b), rtol=1e-12)


def test_ridge_runs_on_the_device_brainldm_device_names(rng, monkeypatch):
    X, Y, ids, _ = simulate(rng, n_images=30)
    monkeypatch.setenv("BRAINLDM_DEVICE", "cpu")
    assert GroupRidgeCV(progress=False).fit(X, Y, ids).coef_.shape == (30, 8)
    monkeypatch.setenv("BRAINLDM_DEVICE", "no-such-device")
    with pytest.raises(BrainLDMError, match="unknown device 'no-such-device'"):
        GroupRidgeCV(progress=False).fit(X, Y, ids)
    GroupRidgeCV(device="cpu", progress=False).fit(X, Y, ids)  # an explicit device wins


def test_the_authors_recipe_equals_standardscaler_and_ridge_without_intercept():
    """codes/utils/ridge.py: StandardScaler on X, then ridge without intercept (one alpha, no CV needed)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from brainldm.fit.ridge import GroupRidgeCV

    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 8)) * rng.uniform(0.5, 3, 8) + 2.0
    Y = X @ rng.normal(size=(8, 5)) + 4.0 + rng.normal(size=(60, 5))
    X_test = rng.normal(size=(10, 8)) + 2.0
    ours = GroupRidgeCV(RidgeRecipe(alphas=[3.0], cv="contiguous", fit_intercept=False), progress=False, device="cpu")
    predicted = ours.fit_predict(X, Y, np.arange(60), X_test)
    theirs = make_pipeline(StandardScaler(), Ridge(alpha=3.0, fit_intercept=False)).fit(X, Y).predict(X_test)
    np.testing.assert_allclose(predicted, theirs, rtol=1e-4, atol=1e-4)
    # without an intercept the predictions miss Y's mean: the authors' decoded features are centred
    assert abs(predicted.mean() - 4.0) > 1.0


def test_contiguous_folds_are_sklearns_unshuffled_kfold():
    from sklearn.model_selection import KFold

    from brainldm.fit.ridge import contiguous_kfold

    for (train, val), (t2, v2) in zip(contiguous_kfold(23, 5), KFold(5).split(np.zeros(23))):
        np.testing.assert_array_equal(train, t2)
        np.testing.assert_array_equal(val, v2)


def test_constant_targets_are_recognised_and_predicted_as_their_constant():
    from brainldm.fit.ridge import GroupRidgeCV

    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 6))
    Y = np.column_stack([X @ rng.normal(size=6), np.full(40, 0.7), X[:, 0]]).astype(np.float32)
    model = GroupRidgeCV(RidgeRecipe(alphas=[1.0, 10.0], n_folds=4), progress=False, device="cpu")
    predicted = model.fit_predict(X, Y, np.arange(40), rng.normal(size=(7, 6)))
    np.testing.assert_array_equal(model.constant_, [False, True, False])
    np.testing.assert_allclose(predicted[:, 1], 0.7, rtol=1e-6)


# --- eigenbasis validation and repeated targets (the fast paths of the primal solver) ---------------------------
@pytest.mark.parametrize("cv, fit_intercept, alphas", [("grouped", True, np.logspace(-1, 7, 9)),
                                                       ("contiguous", False, np.logspace(-6, 0, 7)),
                                                       ("grouped", False, np.logspace(-2, 5, 8))])
def test_eigenbasis_validation_agrees_with_validation_predictions(rng, cv, fit_intercept, alphas):
    X, Y, ids, _ = simulate(rng, n_images=150, n_features=40, n_targets=12, noise=np.geomspace(0.05, 50, 12))
    X_test = simulate(np.random.default_rng(1), n_images=30, n_repeats=1, n_features=40)[0]
    kwargs = dict(recipe=RidgeRecipe(alphas=alphas, cv=cv, fit_intercept=fit_intercept), progress=False, device="cpu")
    fast = GroupRidgeCV(validation="eigenbasis", **kwargs).fit(X, Y, ids)
    plain = GroupRidgeCV(validation="predictions", **kwargs).fit(X, Y, ids)
    assert (fast.validation_, plain.validation_) == ("eigenbasis", "predictions")
    np.testing.assert_allclose(fast.cv_scores_, plain.cv_scores_, atol=1e-4)
    expected = plain.predict(X_test)
    np.testing.assert_allclose(fast.predict(X_test), expected, atol=1e-4 * np.abs(expected).max())
    assert GroupRidgeCV(**kwargs).fit(X, Y, ids).validation_ == "eigenbasis"  # auto: 2 * 40 < n_alphas * n_val


def test_eigenbasis_validation_with_equal_and_zero_eigenvalues(rng):
    """Duplicated features (zero eigenvalues) and an orthogonal design (equal eigenvalues) are merged, not divided by 0."""
    n = 200
    Q, _ = np.linalg.qr(rng.standard_normal((n, 6)))
    base = np.column_stack([Q * np.sqrt(n), rng.standard_normal((n, 4))])
    X = np.column_stack([base, base[:, :3]]).astype(np.float32)  # 3 duplicated columns
    Y = (X[:, :8] @ rng.standard_normal((8, 5)) + rng.standard_normal((n, 5))).astype(np.float32)
    ids = np.arange(n) // 2
    kwargs = dict(recipe=RidgeRecipe(alphas=np.logspace(-3, 4, 8)), progress=False, device="cpu")
    fast = GroupRidgeCV(validation="eigenbasis", **kwargs).fit(X, Y, ids)
    plain = GroupRidgeCV(validation="predictions", **kwargs).fit(X, Y, ids)
    assert np.isfinite(fast.cv_scores_).all()
    np.testing.assert_allclose(fast.cv_scores_, plain.cv_scores_, atol=1e-4)
    # (weights along the duplicated columns' null space are rounding noise: compare predictions)
    expected = plain.predict(X)
    np.testing.assert_allclose(fast.predict(X), expected, atol=1e-4 * np.abs(expected).max())


def test_eigenbasis_fold_scores_equal_the_residuals_of_every_alpha(rng):
    import torch

    from brainldm.fit.ridge import _EigenbasisFold, _eigh

    X = torch.as_tensor(rng.standard_normal((300, 25)), dtype=torch.float32)
    Y = X[:, :3] @ torch.randn(3, 7) + torch.randn(300, 7)
    train, val = slice(60, 300), slice(0, 60)
    s, V = _eigh(X[train].T @ X[train])
    fold = _EigenbasisFold(s, V, X[val] @ V, alpha_min=1e-3)
    B = V.T @ (X[train].T @ Y[train])
    alphas = torch.as_tensor(np.logspace(-3, 5, 9), dtype=torch.float32)
    scores = fold.r2(B, (X[val] @ V).T @ Y[val], Y[val], alphas)
    for i, alpha in enumerate(alphas.double()):
        W = V.double() @ (B.double() / (s.double() + alpha)[:, None])
        residual = ((Y[val].double() - X[val].double() @ W) ** 2).sum(0)
        total = ((Y[val].double() - Y[val].double().mean(0)) ** 2).sum(0)
        np.testing.assert_allclose(scores[i].numpy(), (1 - residual / total).numpy(), atol=1e-4)


def test_cross_product_from_one_row_per_group_when_targets_repeat(rng):
    import torch

    from brainldm.fit.ridge import _cross_product

    ids = rng.permutation(np.repeat(np.arange(40), 3))
    Xs = torch.as_tensor(rng.standard_normal((ids.size, 6)), dtype=torch.float32)
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    inverse_t = torch.as_tensor(inverse)
    repeats = (torch.as_tensor(first), inverse_t, torch.zeros(40, 6).index_add_(0, inverse_t, Xs))
    Y_images = torch.as_tensor(rng.standard_normal((40, 5)), dtype=torch.float32)
    Y = Y_images[inverse_t]
    np.testing.assert_allclose(_cross_product(Xs, Y, repeats, block=7), Xs.T @ Y, rtol=1e-4, atol=1e-4)
    Y[5, 2] += 1.0  # one trial differs from its image's other trials: the plain product
    np.testing.assert_array_equal(_cross_product(Xs, Y, repeats), Xs.T @ Y)


def test_validation_choice(rng):
    X, Y, ids, _ = simulate(rng, n_images=100, n_features=30)  # 60 validation samples per fold
    assert GroupRidgeCV(progress=False).fit(X, Y, ids).validation_ == "eigenbasis"
    # more features than validation samples (primal solver still): H (p, p) would outgrow A (n_val, p)
    X_mid = rng.standard_normal((X.shape[0], 100)).astype(np.float32)
    assert GroupRidgeCV(progress=False).fit(X_mid, Y, ids).validation_ == "predictions"
    assert GroupRidgeCV(progress=False, validation="eigenbasis").fit(X_mid, Y, ids).solver_ == "primal"
    X_wide = rng.standard_normal((X.shape[0], 400)).astype(np.float32)
    assert GroupRidgeCV(progress=False).fit(X_wide, Y, ids).validation_ == "predictions"  # kernel solver
    with pytest.raises(BrainLDMError, match="primal solver"):
        GroupRidgeCV(validation="eigenbasis", progress=False).fit(X_wide, Y, ids)
    with pytest.raises(BrainLDMError, match="unknown validation"):
        GroupRidgeCV(validation="fast", progress=False).fit(X, Y, ids)


def test_ridge_recipe_is_checked_once_and_keys_the_fit():
    from brainldm.fit.ridge import DEFAULT_ALPHAS

    recipe = RidgeRecipe(alphas=np.array([1, 10]), n_folds=3)
    assert recipe.alphas == (1.0, 10.0) and recipe.n_folds == 3
    assert recipe.replace(n_folds=None, cv="contiguous") == RidgeRecipe(alphas=[1.0, 10.0], n_folds=3, cv="contiguous")
    assert RidgeRecipe().as_dict() == {"alphas": list(DEFAULT_ALPHAS), "n_folds": 5, "cv": "grouped",
                                       "train_on": "trials", "fit_intercept": True, "random_state": 0}
    assert hash(recipe) == hash(RidgeRecipe(alphas=(1.0, 10.0), n_folds=3))  # frozen: usable as a key
    with pytest.raises(BrainLDMError, match="alphas must be a non-empty"):
        RidgeRecipe(alphas=[1.0, -1.0])
    with pytest.raises(BrainLDMError, match="n_folds must be an integer >= 2"):
        RidgeRecipe(n_folds=1)
    with pytest.raises(BrainLDMError, match="unknown cv"):
        RidgeRecipe(cv="shuffled")
    with pytest.raises(BrainLDMError, match="must be a RidgeRecipe"):
        GroupRidgeCV({"alphas": [1.0]}, progress=False).fit(np.ones((10, 2)), np.ones(10), np.arange(10))


def test_kernel_cv_scores_equal_explicit_fold_fits(rng):
    import torch

    from brainldm.fit.ridge import kernel_cv_scores

    X = rng.standard_normal((48, 70))
    Y = X[:, :4] @ rng.standard_normal((4, 3)) + rng.standard_normal((48, 3))
    Y -= Y.mean(0)
    folds = group_kfold(np.arange(48) // 2, 4, random_state=1)
    alphas = np.array([0.5, 5.0, 500.0])
    scores = kernel_cv_scores(torch.as_tensor(X @ X.T), torch.as_tensor(Y), folds, torch.as_tensor(alphas))
    assert scores.shape == (3, 3)
    for i, alpha in enumerate(alphas):
        expected = np.zeros(3)
        for train, val in folds:
            predicted = Ridge(alpha=alpha, fit_intercept=False).fit(X[train], Y[train]).predict(X[val])
            residual = ((Y[val] - predicted) ** 2).sum(0)
            expected += 1 - residual / ((Y[val] - Y[val].mean(0)) ** 2).sum(0)
        np.testing.assert_allclose(scores[i].numpy(), expected / len(folds), rtol=1e-6, atol=1e-8)
