"""Voxelwise encoding models: predict every voxel's response from a stimulus feature.

Takagi & Nishimoto (CVPR 2023, sec. 3.3) predict fMRI from the latent diffusion model's
parts (``z``, ``c``, ``z_c``, the denoising trajectory, U-Net layers) with one linear
model per voxel and map the test-set accuracy on the cortex. Here:

* **Samples.** One per training image: the repeats of an image are averaged, so every
  sample is a different image and any cross-validation is grouped by image. (Fitting
  on single trials gives the same weights up to the noise of the repeats for three
  times the samples; the kernel solver's cost grows with the square of the samples.)
* **Model.** Kernel ridge regression. Each feature block is standardised on the training
  images and scaled by ``1 / sqrt(n_features)``, so that its linear kernel ``K = X X'``
  has unit mean diagonal whatever its size; a joint model of several blocks
  (``[z, c]``) sums their kernels, each block weighted equally. The solution needs one
  eigendecomposition of the ``n_train × n_train`` kernel per feature, never a
  ``n_features × n_voxels`` weight matrix, so ``c`` (12,288 features on the world,
  59,136 with SD 1.4) costs no more than ``z``.
* **Penalty.** One alpha per voxel from a grid, chosen by generalised cross-validation
  (``cv="gcv"``, the default: leave-one-image-out cross-validation made rotation
  invariant, Golub, Heath & Wahba 1979), which in the kernel's eigenbasis costs
  ``O(n_train × n_voxels)`` per alpha; or by K-fold cross-validation grouped by image
  (``cv=5``), computed by the ridge engine's kernel solver (:func:`brainldm.fit.ridge.kernel_cv_scores`,
  so it equals :class:`~brainldm.fit.ridge.GroupRidgeCV`'s; a test checks it), which costs about five
  times as much.
* **Scores.** On the test images (repeats averaged): Pearson ``r`` per voxel, ``r``
  divided by the voxel's noise ceiling (``sqrt(NC / 100)``, the largest ``r`` its noise
  allows), the coefficient of determination ``R²`` (for variance partitioning), and a
  one-sided p-value for ``r > 0`` — parametric (Student's t with ``n_test - 2`` degrees of
  freedom) or by permuting the test images — made into q-values by the
  Benjamini–Hochberg procedure over voxels.
* **Uncertainty per ROI.** ROI means of a score come with bootstrap intervals over test
  images: the observed mean ± 1.96 times the standard deviation of the mean over resamples
  of the test images (the same resamples for every feature, so differences are paired;
  normal rather than percentile intervals, because resampling images with replacement
  biases per-voxel r and R²).

Fits are cached per feature (:func:`brainldm.data.cache.cached_arrays`), keyed by the
responses, the feature values and the settings.
"""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from himalaya.backend import set_backend
from himalaya.kernel_ridge import MultipleKernelRidgeCV
from scipy import stats
from sklearn.base import BaseEstimator

from brainldm.data.cache import array_digest, cached_arrays
from brainldm.errors import BrainLDMError, check_choice, check_parameter
from brainldm.data.progress import progress_bar
from brainldm.fit.ridge import check_alphas, correlation_score, group_kfold, kernel_cv_scores
from brainldm.settings import torch_device

__all__ = ["ENCODING_ALPHAS", "DEFAULT_N_TRAIN", "EncodingData", "encoding_data", "roi_medians",
           "KernelRidgeEncoder", "EncodingRecipe", "EncodingResult", "fit_encoders", "bh_fdr", "significant",
           "RoiScores", "roi_scores", "variance_partition", "best_feature"]

_VERSION = "1"

#: Penalties for kernels with unit mean diagonal (their eigenvalues sum to ``n_train``):
#: from almost none to far more than the largest eigenvalue, a quarter decade apart.
#: (The decoders' grid, for standardised features, is :data:`brainldm.fit.ridge.DEFAULT_ALPHAS`.)
ENCODING_ALPHAS = np.logspace(-2, 5, 29)

TESTS = ("parametric", "permutation")


# --- data --------------------------------------------------------------------------------
@dataclass
class EncodingData:
    """Repeat-averaged responses of one subject, ready for encoding models.

    Attributes
    ----------
    subject : str
    train_ids : int array of shape (n_train,)
    Y_train : float32 array of shape (n_train, n_voxels)
    test_ids : int array of shape (n_test,)
    Y_test : float32 array of shape (n_test, n_voxels)
    noise_ceiling : float array of shape (n_voxels,)
        % of the variance of ``Y_test`` that is explainable (repeats of the test images).
    """

    subject: str
    train_ids: np.ndarray
    Y_train: np.ndarray
    test_ids: np.ndarray
    Y_test: np.ndarray
    noise_ceiling: np.ndarray

    @property
    def ids(self):
        """Training then test image ids: the rows of a feature matrix :func:`fit_encoders` takes."""
        return np.concatenate([self.train_ids, self.test_ids])

    @property
    def n_voxels(self):
        return self.Y_train.shape[1]

    def digest(self):
        return array_digest(self.train_ids, self.Y_train, self.test_ids, self.Y_test)


#: training images of the encoding models when ``n_train`` is None: 700 of the world's 1,000
#: (chapters 9-12 reach the same verdicts with all 1,000, and the LDM features of 800 images
#: instead of 1,100 keep each chapter within its time budget); every one on NSD
DEFAULT_N_TRAIN = {"world": 700}


def encoding_data(ds, n_train=None):
    """Repeat-averaged training and test responses of every voxel of ``ds``.

    Parameters
    ----------
    ds : Dataset
    n_train : int, optional
        Keep only the first ``n_train`` training images (in id order). Default:
        :data:`DEFAULT_N_TRAIN` of the dataset (at most the images it has), else all.

    Returns
    -------
    data : EncodingData
    """
    Y_train, train_ids = ds.betas("train", average=True)
    Y_test, test_ids = ds.betas("test", average=True)
    if n_train is None and ds.name in DEFAULT_N_TRAIN:
        n_train = min(DEFAULT_N_TRAIN[ds.name], len(train_ids))
    if n_train is not None:
        if not 2 <= int(n_train) <= len(train_ids):
            raise BrainLDMError(f"n_train must be between 2 and the {len(train_ids)} training images; "
                                f"found {n_train}")
        Y_train, train_ids = Y_train[:int(n_train)], train_ids[:int(n_train)]
    return EncodingData(subject=ds.subject, train_ids=train_ids, Y_train=Y_train, test_ids=test_ids,
                        Y_test=Y_test, noise_ceiling=ds.noise_ceiling("test"))


def roi_medians(ds, values, rois):
    """Median of per-voxel values in every ROI.

    Parameters
    ----------
    ds : Dataset
    values : dict of str to array of shape (n_voxels,)
        E.g. ``{name: result.r_normalized}``.
    rois : list of str

    Returns
    -------
    table : pandas DataFrame
        One row per name, one column per ROI (NaN values are ignored).
    """
    return pd.DataFrame({roi: [np.nanmedian(np.where(ds.roi_mask(roi), v, np.nan)) for v in values.values()]
                         for roi in rois}, index=list(values))


# --- the estimator -----------------------------------------------------------------------
def _blocks(X):
    if isinstance(X, np.ndarray) or torch.is_tensor(X):
        X = [X]
    blocks = [np.asarray(x) for x in X]
    if not blocks or any(b.ndim != 2 for b in blocks) or len({len(b) for b in blocks}) != 1:
        shapes = [np.shape(b) for b in blocks]
        raise BrainLDMError(f"X must be an array of shape (n_samples, n_features) or a list of such arrays with "
                            f"the same number of rows; found shapes {shapes}")
    for b in blocks:
        if not np.isfinite(b).all():
            raise BrainLDMError("X contains NaN or infinite values; remove or impute them before fitting")
    return blocks


class KernelRidgeEncoder(BaseEstimator):
    """Kernel ridge regression from one or several feature blocks to many voxels.

    Parameters
    ----------
    alphas : array of shape (n_alphas,)
        Candidate penalties for kernels with unit mean diagonal.
    cv : "gcv" or int
        Generalised cross-validation, or the number of folds of a K-fold cross-validation
        grouped by ``groups``.
    device : str or torch.device, optional
        Where the linear algebra runs; default :func:`brainldm.settings.torch_device`
        (``BRAINLDM_DEVICE``, else CUDA when present). Features and responses are float32;
        the ``n_samples × n_samples`` kernel and its eigendecomposition are float64.
    random_state : int
        Seed of the assignment of groups to folds (``cv`` int).
    chunk_size : int
        Voxels processed at once.
    banded : bool
        With several feature blocks: banded ridge, one penalty per block and voxel, fitted
        by himalaya's ``MultipleKernelRidgeCV`` (random search over ``n_weights`` weightings
        of the blocks, scored by grouped 5-fold CV). False: the blocks' kernels are summed
        with equal weights under one penalty.
    n_weights : int
        Weightings of the blocks tried by the banded fit.

    Attributes
    ----------
    best_alphas_ : array of shape (n_voxels,)
    cv_scores_ : float32 array of shape (n_alphas, n_voxels)
        GCV error (lower is better) or mean validation R² (higher is better).
    dual_coef_ : float32 tensor of shape (n_samples, n_voxels)
        On ``device_``.
    device_ : torch.device
        Where the model was fitted.
    n_blocks_ : int
    kernel_weights_ : float32 array of shape (n_blocks, n_voxels)
        Each block's share of the kernel per voxel (equal without ``banded``).

    Examples
    --------
    >>> model = KernelRidgeEncoder().fit([z_train, c_train], Y_train)  # doctest: +SKIP
    >>> r = model.score([z_test, c_test], Y_test)  # doctest: +SKIP
    """

    def __init__(self, alphas=ENCODING_ALPHAS, cv="gcv", device=None, random_state=0, chunk_size=8192,
                 banded=False, n_weights=21):
        self.alphas = alphas
        self.cv = cv
        self.device = device
        self.random_state = random_state
        self.chunk_size = chunk_size
        self.banded = banded
        self.n_weights = n_weights

    def _kernel(self, blocks, fit):
        """Sum of the blocks' normalised linear kernels against the training samples: (n, n_train)."""
        return torch.stack(self._kernels(blocks, fit)).sum(0)

    def _kernels(self, blocks, fit):
        """Each block's normalised linear kernel against the training samples: list of (n, n_train)."""
        kernels = []
        for k, block in enumerate(blocks):
            x = torch.as_tensor(np.asarray(block, dtype=np.float32), device=self.device_)
            if fit:
                mean = x.mean(0)
                std = x.std(0, unbiased=False)
                std[std == 0] = 1.0
                self._stats.append((mean, std * np.sqrt(x.shape[1])))
            mean, scale = self._stats[k]
            x = (x - mean) / scale
            kernels.append((x @ (x.T if fit else self._train_blocks[k].T)).double())
            if fit:
                self._train_blocks.append(x)
        return kernels

    def fit(self, X, Y, groups=None):
        """Choose an alpha per voxel and fit.

        Parameters
        ----------
        X : array of shape (n_samples, n_features), or list of such arrays
            Feature blocks of the training images.
        Y : array of shape (n_samples, n_voxels)
            Their (repeat-averaged) responses.
        groups : array of shape (n_samples,), optional
            Image id of each sample, for ``cv`` int (default: every sample its own group).

        Returns
        -------
        self
        """
        blocks = _blocks(X)
        Y = np.asarray(Y, dtype=np.float32)
        n = len(blocks[0])
        if Y.ndim != 2 or len(Y) != n:
            raise BrainLDMError(f"Y must have shape (n_samples, n_voxels) with the {n} rows of X; found {Y.shape}")
        alphas = check_alphas(self.alphas)
        if self.cv != "gcv" and not (isinstance(self.cv, (int, np.integer)) and self.cv >= 2):
            raise BrainLDMError(f"cv must be 'gcv' or a number of folds >= 2; found {self.cv!r}")
        self.device_ = device = torch_device(self.device)
        self._stats, self._train_blocks = [], []
        if self.banded and len(blocks) > 1:
            return self._fit_banded(blocks, Y, alphas, groups)
        self.banded_model_ = None
        self.kernel_weights_ = np.full((len(blocks), Y.shape[1]), 1.0 / len(blocks), np.float32)
        K = self._kernel(blocks, fit=True)
        y_mean = Y.mean(0, dtype=np.float64)
        Yc = torch.as_tensor(Y - y_mean.astype(np.float32), device=device)
        alphas_t = torch.as_tensor(alphas, device=device)
        s, U = torch.linalg.eigh(K)
        s = s.clamp(min=0)
        if self.cv == "gcv":
            scores, best = self._gcv(s, U, Yc, alphas_t, n)
        else:
            folds = group_kfold(np.arange(n) if groups is None else groups, int(self.cv), self.random_state)
            scores, best = self._kfold(K, Yc, folds, alphas_t)
        # dual coefficients: U diag(1 / (s + alpha_v)) U' y_v for every voxel v
        dual = torch.empty_like(Yc)
        U32, s32 = U.float(), s.float()
        for start in range(0, Yc.shape[1], int(self.chunk_size)):
            cols = slice(start, start + int(self.chunk_size))
            Q = U32.T @ Yc[:, cols]
            dual[:, cols] = U32 @ (Q / (s32[:, None] + alphas_t[best[cols]].float()[None, :]))
        self.dual_coef_ = dual
        self.intercept_ = y_mean.astype(np.float32)
        self.best_alphas_ = alphas[best.cpu().numpy()]
        self.cv_scores_ = scores.float().cpu().numpy()
        self.n_blocks_ = len(blocks)
        return self

    def _himalaya(self):
        """himalaya's torch backend on this model's device (``torch_cuda`` on a GPU)."""
        return set_backend("torch_cuda" if self.device_.type == "cuda" else "torch", on_error="raise")

    def _fit_banded(self, blocks, Y, alphas, groups):
        """Banded ridge: one penalty per feature block and voxel (himalaya's ``MultipleKernelRidgeCV``).

        The blocks' kernels are weighted by ``gamma`` and ``1 - gamma`` (or, with more than two
        blocks, by ``n_weights`` Dirichlet draws), and every weighting and alpha is scored by
        ``cv``-fold cross-validation grouped by image (5 folds when ``cv`` is ``"gcv"``):
        the random-search solver of Nunez-Elizalde et al. (2019) / Dupré la Tour et al. (2022).
        """
        backend = self._himalaya()
        n = len(blocks[0])
        Ks = torch.stack(self._kernels(blocks, fit=True)).float()
        if len(blocks) == 2:
            gamma = np.linspace(0.0, 1.0, int(self.n_weights))[1:-1] if self.n_weights > 2 else np.array([0.5])
            weights = np.stack([gamma, 1 - gamma], axis=1)
            weights = np.concatenate([weights, [[1 - 1e-6, 1e-6], [1e-6, 1 - 1e-6]]])
        else:
            weights = np.random.default_rng(self.random_state).dirichlet(np.ones(len(blocks)), int(self.n_weights))
        folds = group_kfold(np.arange(n) if groups is None else groups,
                            5 if self.cv == "gcv" else int(self.cv), self.random_state)
        y_mean = Y.mean(0, dtype=np.float64)
        model = MultipleKernelRidgeCV(kernels="precomputed", solver="random_search", cv=folds,
                                      random_state=self.random_state, solver_params=dict(
                                          n_iter=weights, alphas=alphas, progress_bar=False,
                                          n_targets_batch=int(self.chunk_size)))
        model.fit(Ks, torch.as_tensor(Y - y_mean.astype(np.float32), device=self.device_))
        deltas = np.asarray(backend.to_numpy(model.deltas_), np.float64)  # log(weight / alpha), (blocks, voxels)
        self.banded_model_ = model
        self.kernel_weights_ = (np.exp(deltas) / np.exp(deltas).sum(0, keepdims=True)).astype(np.float32)
        self.best_alphas_ = 1.0 / np.exp(deltas).sum(0)
        self.cv_scores_ = np.asarray(backend.to_numpy(model.cv_scores_), np.float32)
        self.intercept_ = y_mean.astype(np.float32)
        self.n_blocks_ = len(blocks)
        return self

    def _gcv(self, s, U, Yc, alphas, n):
        """GCV error of every alpha and voxel, and the best alpha's index per voxel."""
        U32 = U.float()
        shrink = alphas[:, None] / (s[None, :] + alphas[:, None])  # (n_alphas, n): 1 - hat eigenvalues
        dof = (s[None, :] / (s[None, :] + alphas[:, None])).sum(1)  # trace of the hat matrix
        denominator = (n - 1 - dof).clamp(min=1e-12) ** 2  # one more degree of freedom for the mean
        scores = torch.empty(len(alphas), Yc.shape[1], dtype=torch.float64, device=Yc.device)
        for start in range(0, Yc.shape[1], int(self.chunk_size)):
            cols = slice(start, start + int(self.chunk_size))
            Q2 = ((U32.T @ Yc[:, cols]) ** 2).double()
            scores[:, cols] = n * ((shrink ** 2) @ Q2) / denominator[:, None]
        return scores, scores.argmin(0)

    def _kfold(self, K, Yc, folds, alphas):
        """Mean validation R² of every alpha and voxel over grouped folds (the ridge engine's
        :func:`~brainldm.fit.ridge.kernel_cv_scores`), and the best alpha per voxel."""
        scores = kernel_cv_scores(K, Yc.double(), folds, alphas)
        return scores, scores.argmax(0)

    def predict(self, X):
        """Predicted responses of new samples: float32 (n, n_voxels)."""
        if not hasattr(self, "n_blocks_"):
            raise BrainLDMError("this KernelRidgeEncoder is not fitted yet; call fit(X, Y) first")
        blocks = _blocks(X)
        if len(blocks) != self.n_blocks_ or any(b.shape[1] != t.shape[1] for b, t in zip(blocks, self._train_blocks)):
            raise BrainLDMError("X must have the same feature blocks (number and sizes) as in fit")
        if getattr(self, "banded_model_", None) is not None:
            Ks = torch.stack(self._kernels(blocks, fit=False)).float()
            return np.asarray(self._himalaya().to_numpy(self.banded_model_.predict(Ks)), np.float32) + self.intercept_
        K = self._kernel(blocks, fit=False).float()
        return (K @ self.dual_coef_).cpu().numpy() + self.intercept_

    def score(self, X, Y):
        """Pearson r between predictions and ``Y`` per voxel: (n_voxels,)."""
        return correlation_score(Y, self.predict(X))


# --- fitting many features ---------------------------------------------------------------
def bh_fdr(p):
    """Benjamini–Hochberg q-values of p-values (NaN stays NaN).

    Parameters
    ----------
    p : array of shape (n,)

    Returns
    -------
    q : array of shape (n,)
        A voxel is significant at false discovery rate ``level`` when ``q <= level``
        (:func:`significant`).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return q
    order = ok[np.argsort(p[ok])]
    ranked = p[order] * ok.size / np.arange(1, ok.size + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q


def significant(q, fdr=0.05):
    """The book's one significance rule: a q-value at most the false discovery rate (NaN: not significant).

    Parameters
    ----------
    q : array of shape (n,)
        Benjamini–Hochberg q-values (:func:`bh_fdr`).
    fdr : float
        False discovery rate, in (0, 1).

    Returns
    -------
    significant : bool array of shape (n,)
    """
    fdr = check_parameter("fdr", fdr, "float", low=0, high=1, low_open=True, high_open=True)
    return np.nan_to_num(np.asarray(q, dtype=np.float64), nan=1.0) <= fdr


def _parametric_p(r, n):
    r = np.clip(np.asarray(r, np.float64), -0.999999, 0.999999)
    t = r * np.sqrt((n - 2) / (1 - r ** 2))
    return stats.t.sf(t, n - 2)


def _permutation_p(Y, P, r, n_permutations, seed):
    """One-sided p of ``r`` against correlations with the test images shuffled."""
    Ys = (Y - Y.mean(0)) / np.where(Y.std(0) > 0, Y.std(0), 1.0)
    Ps = (P - P.mean(0)) / np.where(P.std(0) > 0, P.std(0), 1.0)
    rng = np.random.default_rng(seed)
    exceed = np.zeros(Y.shape[1])
    for _ in range(int(n_permutations)):
        exceed += (Ys[rng.permutation(len(Ys))] * Ps).mean(0) >= r
    return (exceed + 1) / (n_permutations + 1)


@dataclass
class EncodingResult:
    """Test-set accuracy of one encoding model, per voxel.

    Attributes
    ----------
    name : str
    predicted : float32 array of shape (n_test, n_voxels)
    r : array of shape (n_voxels,)
        Pearson correlation with the repeat-averaged test responses.
    r_normalized : array of shape (n_voxels,)
        ``r / sqrt(noise_ceiling / 100)``; NaN where the noise ceiling is below ``min_ceiling``.
    r2 : array of shape (n_voxels,)
        Coefficient of determination on the test images.
    p, q : arrays of shape (n_voxels,)
        One-sided p-value of ``r > 0`` and its Benjamini–Hochberg q-value.
    significant : bool array of shape (n_voxels,)
        ``q <= fdr``.
    alphas : array of shape (n_voxels,)
        Chosen penalties.
    n_features : int
    kernel_weights : array of shape (n_blocks, n_voxels), optional
        Each feature block's share of a joint model's kernel (banded ridge), per voxel.
    """

    name: str
    predicted: np.ndarray
    r: np.ndarray
    r_normalized: np.ndarray
    r2: np.ndarray
    p: np.ndarray
    q: np.ndarray
    significant: np.ndarray
    alphas: np.ndarray
    n_features: int
    kernel_weights: np.ndarray = None


def _r2(Y, P):
    Y = np.asarray(Y, np.float64)
    residual = ((Y - P) ** 2).sum(0)
    total = ((Y - Y.mean(0)) ** 2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1 - residual / total


@dataclass(frozen=True)
class EncodingRecipe:
    """How :func:`fit_encoders` fits and tests every feature's model: one frozen value, checked when made.

    Attributes
    ----------
    alphas : tuple of float
        Candidate penalties for kernels with unit mean diagonal (:data:`ENCODING_ALPHAS`).
    cv : "gcv" or int
        Generalised cross-validation, or the number of folds grouped by image
        (:class:`KernelRidgeEncoder`).
    banded : bool
        A joint model (a list of blocks) gets one penalty per block and voxel (banded
        ridge, :class:`KernelRidgeEncoder` ``banded``); False sums the blocks' kernels.
    test : {"parametric", "permutation"}
        How p-values are computed: Student's t of r, or permutations of the test images.
    n_permutations : int
        Permutations of the test images (``test="permutation"``).
    min_ceiling : float
        Noise ceiling (%) below which ``r_normalized`` is NaN.
    """

    alphas: tuple = tuple(ENCODING_ALPHAS)
    cv: object = "gcv"
    banded: bool = True
    test: str = "parametric"
    n_permutations: int = 1000
    min_ceiling: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "alphas", tuple(float(a) for a in check_alphas(self.alphas)))
        if self.cv != "gcv" and not (isinstance(self.cv, (int, np.integer)) and self.cv >= 2):
            raise BrainLDMError(f"cv must be 'gcv' or a number of folds >= 2; found {self.cv!r}")
        check_choice("test", self.test, TESTS)
        check_parameter("n_permutations", self.n_permutations, "int", low=1)

    def replace(self, **overrides):
        """A copy with the given fields replaced; None values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def fit_encoders(data, features, fdr=0.05, recipe=None, seed=0, device=None, progress=True):
    """Fit one encoding model per feature, sharing the responses (cached per feature).

    Parameters
    ----------
    data : EncodingData
    features : dict of str to array or list of arrays
        Feature name to its values for ``data.ids`` (training images, then test images):
        an array of shape (n_train + n_test, d), or a list of such arrays for a joint model.
    fdr : float
        False discovery rate of :attr:`EncodingResult.significant` (:func:`significant`).
    recipe : EncodingRecipe, optional
        Penalties, cross-validation, banded joint models and the test (default ``EncodingRecipe()``).
    seed : int
        Seeds the folds (``cv`` int) and the permutations.
    device : str or torch.device, optional
        See :class:`KernelRidgeEncoder`.
    progress : bool

    Returns
    -------
    results : dict of str to EncodingResult
        In the order of ``features``.
    """
    fdr = check_parameter("fdr", fdr, "float", low=0, high=1, low_open=True, high_open=True)
    recipe = EncodingRecipe() if recipe is None else recipe
    n_train, n_test = len(data.train_ids), len(data.test_ids)
    data_key = data.digest()
    results = {}
    ceiling = np.sqrt(np.clip(data.noise_ceiling, 0, None) / 100.0)
    permutation = recipe.test == "permutation"
    for name, value in progress_bar(features.items(), desc="encoding models", unit="feature",
                                    show=progress and len(features) > 1):
        blocks = _blocks(value)
        if len(blocks[0]) != n_train + n_test:
            raise BrainLDMError(f"feature {name!r} has {len(blocks[0])} rows; expected one per image of data.ids "
                                f"({n_train} training then {n_test} test images)")

        def compute():
            model = KernelRidgeEncoder(alphas=recipe.alphas, cv=recipe.cv, device=device, random_state=seed,
                                       banded=recipe.banded)
            model.fit([b[:n_train] for b in blocks], data.Y_train, groups=data.train_ids)
            predicted = model.predict([b[n_train:] for b in blocks]).astype(np.float32)
            out = {"predicted": predicted, "alphas": model.best_alphas_, "kernel_weights": model.kernel_weights_}
            if permutation:
                r = correlation_score(data.Y_test, predicted)
                out["p"] = _permutation_p(data.Y_test, predicted, r, recipe.n_permutations, seed)
            return out

        params = {"data": data_key, "features": [array_digest(b) for b in blocks],
                  "alphas": list(recipe.alphas), "cv": recipe.cv, "seed": seed,
                  "test": recipe.test, "n_permutations": recipe.n_permutations if permutation else None,
                  "banded": bool(recipe.banded and len(blocks) > 1)}
        arrays = cached_arrays("encoding", params, _VERSION, compute)
        predicted = arrays["predicted"]
        r = correlation_score(data.Y_test, predicted)
        p = arrays["p"] if permutation else _parametric_p(r, n_test)
        p = np.where(np.isfinite(r), p, np.nan)
        q = bh_fdr(p)
        with np.errstate(invalid="ignore", divide="ignore"):
            r_norm = np.where(data.noise_ceiling >= recipe.min_ceiling, r / ceiling, np.nan)
        results[name] = EncodingResult(name=name, predicted=predicted, r=r, r_normalized=r_norm,
                                       r2=_r2(data.Y_test, predicted), p=p, q=q,
                                       significant=significant(q, fdr), alphas=arrays["alphas"],
                                       n_features=int(sum(b.shape[1] for b in blocks)),
                                       kernel_weights=arrays.get("kernel_weights"))
    return results


# --- summaries per ROI -------------------------------------------------------------------
def _boot_weights(n, n_boot, seed):
    """Multiplicities of each test image in ``n_boot`` bootstrap resamples: (n_boot, n)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, (int(n_boot), n))
    W = np.zeros((int(n_boot), n))
    np.add.at(W, (np.repeat(np.arange(int(n_boot)), n), draws.ravel()), 1.0)
    return W


def _standardise(X):
    X = np.asarray(X, np.float64)
    scale = X.std(0)
    scale[scale == 0] = 1.0
    return (X - X.mean(0)) / scale, scale


def _boot_scores(W, Y, P, metric):
    """``metric`` ("r" or "r2") of every voxel in every weighted resample: (n_boot, n_voxels).

    The weighted sums are float32 matrix products of standardised arrays (``Y`` and ``P``
    each standardised for r; ``Y`` and the residual ``Y - P`` in ``Y``'s units for R²), so
    that no sum cancels catastrophically.
    """
    Ys, scale = _standardise(Y)
    W = np.asarray(W, np.float32)
    m = W.sum(1, keepdims=True)
    Ys = Ys.astype(np.float32)
    mean_y = W @ Ys / m
    var_y = W @ (Ys * Ys) / m - mean_y ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "r":
            Ps = _standardise(P)[0].astype(np.float32)
            mean_p = W @ Ps / m
            cov = W @ (Ys * Ps) / m - mean_y * mean_p
            var_p = W @ (Ps * Ps) / m - mean_p ** 2
            return cov / np.sqrt(np.clip(var_y, 0, None) * np.clip(var_p, 0, None))
        residual = ((np.asarray(Y, np.float64) - P) / scale).astype(np.float32)
        return 1 - (W @ (residual * residual) / m) / var_y


class RoiScores:
    """ROI means of a per-voxel score for several models, with bootstrap resamples over test images.

    Made by :func:`roi_scores`. Linear combinations of models (differences, unique variance)
    get their intervals from the same resamples.

    Attributes
    ----------
    names : list of str
        Models.
    rois : list of str
    metric : str
    observed : array of shape (n_models, n_rois)
    boot : array of shape (n_models, n_boot, n_rois)
    n_voxels : array of shape (n_rois,)
    level : float
    """

    def __init__(self, names, rois, metric, observed, boot, n_voxels, subject="", level=0.95):
        self.names, self.rois, self.metric = list(names), list(rois), metric
        self.observed, self.boot, self.n_voxels = observed, boot, n_voxels
        self.subject, self.level = subject, level

    def _index(self, name):
        return self.names.index(check_choice("model", name, self.names))

    def combination(self, weights, label):
        """Mean and interval per ROI of ``sum(weight * score of model)``.

        Parameters
        ----------
        weights : dict of str to float
            Model name to weight, e.g. ``{"z": 1, "c": -1}`` for ``z - c``.
        label : str
            The ``feature`` column of the result.

        Returns
        -------
        table : pandas DataFrame
            Columns ``subject``, ``feature``, ``roi``, ``n_voxels``, ``mean``, ``ci_low``, ``ci_high``.
        """
        obs = sum(w * self.observed[self._index(k)] for k, w in weights.items())
        boot = sum(w * self.boot[self._index(k)] for k, w in weights.items())
        half = stats.norm.ppf(0.5 + self.level / 2) * np.nanstd(boot, axis=0, ddof=1)
        low, high = obs - half, obs + half
        return pd.DataFrame({"subject": self.subject, "feature": label, "roi": self.rois, "n_voxels": self.n_voxels,
                             "mean": obs, "ci_low": low, "ci_high": high})

    def table(self, names=None):
        """Every model's ROI means with intervals (one row per model and ROI)."""
        names = self.names if names is None else names
        return pd.concat([self.combination({n: 1.0}, n) for n in names], ignore_index=True)

    def contrast(self, a, b):
        """ROI means of ``score(a) - score(b)`` with intervals; feature label ``"a - b"``.

        The ``verdict`` column says ``"a > b"`` or ``"b > a"`` when the interval excludes 0,
        else ``"no difference"``.
        """
        table = self.combination({a: 1.0, b: -1.0}, f"{a} - {b}")
        table["verdict"] = np.where(table["ci_low"] > 0, f"{a} > {b}",
                                    np.where(table["ci_high"] < 0, f"{b} > {a}", "no difference"))
        return table


def roi_scores(data, results, rois, ds, metric="r", n_boot=1000, seed=0, level=0.95):
    """ROI means of a per-voxel test score for every model, with bootstrap intervals over test images.

    Parameters
    ----------
    data : EncodingData
    results : dict of str to EncodingResult
    rois : list of str
    ds : Dataset
        Gives the ROI masks.
    metric : {"r", "r2"}
        Pearson r or the coefficient of determination.
    n_boot : int
    seed : int
    level : float

    Returns
    -------
    scores : RoiScores
    """
    check_choice("metric", metric, ("r", "r2"))
    n_boot = check_parameter("n_boot", n_boot, "int", low=1)
    masks = np.stack([ds.roi_mask(roi) for roi in rois], axis=1).astype(np.float64)  # (v, n_rois)
    counts = masks.sum(0)
    W = _boot_weights(len(data.test_ids), n_boot, seed)
    observed, boot = [], []
    for result in results.values():
        per_voxel = result.r if metric == "r" else result.r2
        observed.append(np.nan_to_num(per_voxel) @ masks / counts)
        boot.append(np.nan_to_num(_boot_scores(W, data.Y_test, result.predicted, metric)) @ masks / counts)
    return RoiScores(list(results), rois, metric, np.array(observed), np.array(boot), counts.astype(int),
                     subject=data.subject, level=level)


def variance_partition(results, a, b, joint):
    """Unique and shared test-set variance of two feature sets (de Heer et al. 2017).

    Parameters
    ----------
    results : dict of str to EncodingResult
    a, b, joint : str
        Names of the model of ``a`` alone, ``b`` alone and of both together.

    Returns
    -------
    parts : dict of str to array of shape (n_voxels,)
        ``unique <a>`` = R²(joint) − R²(b), ``unique <b>`` = R²(joint) − R²(a) and
        ``shared`` = R²(a) + R²(b) − R²(joint); and the same as weights for
        :meth:`RoiScores.combination` under ``"weights"``.
    """
    for name in (a, b, joint):
        check_choice("model", name, results)
    ra, rb, rj = results[a].r2, results[b].r2, results[joint].r2
    weights = {f"unique {a}": {joint: 1.0, b: -1.0}, f"unique {b}": {joint: 1.0, a: -1.0},
               "shared": {a: 1.0, b: 1.0, joint: -1.0}}
    return {f"unique {a}": rj - rb, f"unique {b}": rj - ra, "shared": ra + rb - rj, "weights": weights}


def best_feature(results, names=None, significant_only=True):
    """The model with the highest test r in each voxel.

    Parameters
    ----------
    results : dict of str to EncodingResult
    names : list of str, optional
        Models that compete (default: all).
    significant_only : bool
        Leave out (-1) voxels where no competing model is significant.

    Returns
    -------
    winner : int array of shape (n_voxels,)
        Index into ``names``, or -1.
    names : list of str
    """
    names = list(results) if names is None else list(names)
    r = np.stack([np.nan_to_num(results[n].r, nan=-np.inf) for n in names])
    winner = r.argmax(0)
    if significant_only:
        any_significant = np.stack([results[n].significant for n in names]).any(0)
        winner = np.where(any_significant, winner, -1)
    return winner, names
