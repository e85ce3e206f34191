"""Ridge regression with one alpha per target, chosen by cross-validation grouped by image.

Decoding (Takagi & Nishimoto 2023) maps fMRI betas to a stimulus feature (``z``,
``c``); encoding maps a feature to voxels. Both are many-target ridge regressions:

* the samples are single trials, and the repeats of one image must stay in the same
  cross-validation fold (otherwise a fold validates on responses to images it was
  trained on, and the chosen alphas are too small);
* there are thousands to tens of thousands of targets, fitted together in float32 and
  in chunks of targets so that memory stays bounded;
* ``X`` is standardised, ``Y`` is standardised per target, and predictions come back
  in ``Y``'s original units.

Two equivalent solvers, chosen automatically from the shape of ``X``:

``"primal"`` (``n_features <= n_samples``, decoding from an ROI)
    One Gram matrix ``X.T @ X`` and one ``X.T @ Y`` for the whole training set; each
    fold subtracts its validation rows' share of both, so no fold re-reads the
    training rows. An eigendecomposition of each fold's Gram matrix gives the
    solutions for every alpha at the cost of a diagonal rescaling.
``"kernel"`` (``n_features > n_samples``, encoding from a large feature)
    The same with the linear kernel ``X @ X.T`` in place of the Gram matrix.

Validation errors of every alpha (``validation="eigenbasis"``, the default for the primal
solver): with ``B = V.T @ X_train.T @ Y`` in a fold's eigenbasis, ``A = X_val @ V``,
``G = A.T @ A`` and ``d_k = 1 / (s_k + alpha)``, the validation residual sum of squares
of a target is ``||y_val||**2 - 2 sum_k d_k (A.T y_val)_k b_k + sum_kl d_k d_l b_k G_kl b_l``.
The last sum is split by partial fractions, ``d_k d_l = (d_k - d_l) / (s_l - s_k)``, into
``2 sum_k d_k b_k (H b)_k`` with ``H_kl = G_kl / (s_l - s_k)`` (zero where ``s_k = s_l``)
plus ``sum_k d_k**2 b_k (G b)_k`` over equal eigenvalues: one ``(p, p) @ (p, chunk)``
product per fold for all alphas together, where forming each alpha's validation
predictions costs one ``(n_val, p) @ (p, chunk)`` product per alpha. Eigenvalues closer
than ``1e-6 (s + min(alphas))`` are merged to their mean first (a perturbation far below
float32's resolution of the Gram matrix) so that no ``s_l - s_k`` is tiny.

Repeated targets: when every sample of a group has the same targets (a decoded feature
of the image shown on each trial), ``X.T @ Y = (R.T @ X).T @ Y_groups`` with ``R`` the
(n_samples, n_groups) indicator, which costs ``n_groups`` rows instead of ``n_samples``.
"""

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from sklearn.base import BaseEstimator

from brainldm.errors import BrainLDMError, check_choice
from brainldm.data.progress import progress_bar
from brainldm.settings import torch_device
from brainldm.data.noise import average_repeats

__all__ = ["RidgeRecipe", "GroupRidgeCV", "group_kfold", "contiguous_kfold", "correlation_score", "check_alphas",
           "kernel_cv_scores", "DEFAULT_ALPHAS", "CV_SCHEMES", "CONSTANT_TOLERANCE"]

#: Default alpha grid, one value per decade. With standardised ``X`` the eigenvalues
#: of ``X.T @ X`` average ``n_samples`` (about 2.5e4 single trials on NSD), so the grid
#: spans "almost no penalty" to "penalty far above the signal".
DEFAULT_ALPHAS = np.logspace(-1, 7, 9)

SOLVERS = ("auto", "primal", "kernel")
#: how the validation folds are made: grouped by image (ours) or consecutive samples (the authors')
CV_SCHEMES = ("grouped", "contiguous")
#: a target whose training standard deviation is at most this fraction of its mean's magnitude (or
#: of 1e-6 when the mean is smaller) is constant: CLIP's first token, the same for every caption
CONSTANT_TOLERANCE = 1e-6
TRAIN_ON = ("trials", "averages")
#: how each alpha's validation error is computed (see the module docstring)
VALIDATIONS = ("auto", "eigenbasis", "predictions")
#: eigenvalues of a fold closer than this fraction of ``s + min(alphas)`` are merged (``"eigenbasis"``)
MERGE_TOLERANCE = 1e-6


def check_alphas(alphas):
    """``alphas`` as a 1-D float64 array of positive penalties, or a clear error."""
    checked = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if checked.ndim != 1 or checked.size == 0 or not np.all(checked > 0):
        raise BrainLDMError(f"alphas must be a non-empty 1-D array of positive numbers; found {alphas!r}")
    return checked


@dataclass(frozen=True)
class RidgeRecipe:
    """What a :class:`GroupRidgeCV` fit computes: one frozen value, checked when made.

    Everything that decides the fitted weights (and so keys a cached fit) is here; how they
    are computed (solver, device, chunks of targets) is given to :class:`GroupRidgeCV` itself.

    Attributes
    ----------
    alphas : tuple of float
        Candidate penalties, for ``X`` standardised to unit variance per feature.
    n_folds : int
        Number of cross-validation folds; the samples of one group are never split.
    cv : {"grouped", "contiguous"}
        Folds that keep each group's samples together (shuffled by ``random_state``), or
        ``n_folds`` blocks of consecutive samples (the authors' recipe: scikit-learn's unshuffled
        ``KFold``).
    train_on : {"trials", "averages"}
        Fit on every sample (single trials, as Takagi & Nishimoto do) or on the mean of the
        samples of each group (repeat-averaged responses).
    fit_intercept : bool
        Fit an intercept per target; without one (the authors' himalaya ``RidgeCV``) the
        targets are not centred and predictions have the mean of ``X``'s centred rows.
    random_state : int
        Seed of the assignment of groups to folds.

    Examples
    --------
    >>> RidgeRecipe(alphas=[1.0, 10.0], n_folds=3).replace(n_folds=None, cv="contiguous").n_folds
    3
    """

    alphas: tuple = tuple(DEFAULT_ALPHAS)
    n_folds: int = 5
    cv: str = "grouped"
    train_on: str = "trials"
    fit_intercept: bool = True
    random_state: int = 0

    def __post_init__(self):
        object.__setattr__(self, "alphas", tuple(float(a) for a in check_alphas(self.alphas)))
        if isinstance(self.n_folds, bool) or int(self.n_folds) != self.n_folds or self.n_folds < 2:
            raise BrainLDMError(f"n_folds must be an integer >= 2; found {self.n_folds!r}")
        object.__setattr__(self, "n_folds", int(self.n_folds))
        check_choice("cv", self.cv, CV_SCHEMES)
        check_choice("train_on", self.train_on, TRAIN_ON)
        object.__setattr__(self, "fit_intercept", bool(self.fit_intercept))

    def replace(self, **overrides):
        """A copy with the given fields replaced; None values are ignored (they mean "keep")."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def as_dict(self):
        """The fields as plain Python values (``alphas`` a list): a cache key's parameters."""
        return {**asdict(self), "alphas": list(self.alphas)}


def contiguous_kfold(n_samples, n_folds=5):
    """K folds of consecutive samples, unshuffled (scikit-learn's ``KFold(n_folds)``, which himalaya's
    ``RidgeCV(cv=5)`` uses in the authors' ``codes/utils/ridge.py``): the first ``n_samples % n_folds``
    folds hold one sample more.

    Returns
    -------
    folds : list of n_folds tuples (train, val) of sorted int arrays
    """
    if int(n_folds) != n_folds or n_folds < 2 or n_samples < n_folds:
        raise BrainLDMError(f"n_folds must be an integer >= 2 and at most the {n_samples} samples; found {n_folds!r}")
    sizes = np.full(n_folds, n_samples // n_folds)
    sizes[:n_samples % n_folds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    index = np.arange(n_samples)
    return [(np.concatenate([index[:a], index[b:]]), index[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def group_kfold(groups, n_folds=5, random_state=0):
    """Split samples into K folds such that all samples of one group share a fold.

    Groups (image ids) are shuffled with ``random_state`` and dealt to the folds in
    turn, so every fold gets the same number of groups (to within one).

    Parameters
    ----------
    groups : array of shape (n_samples,)
        The group (image id) of every sample.
    n_folds : int
        Number of folds, at least 2.
    random_state : int
        Seed of the shuffle.

    Returns
    -------
    folds : list of n_folds tuples (train, val)
        ``train`` and ``val`` are sorted int arrays of sample indices that partition
        ``range(n_samples)``.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise BrainLDMError(f"groups must be a 1-D array of one id per sample; found shape {groups.shape}")
    if int(n_folds) != n_folds or n_folds < 2:
        raise BrainLDMError(f"n_folds must be an integer >= 2; found {n_folds!r}")
    uniq, inverse = np.unique(groups, return_inverse=True)
    if uniq.size < n_folds:
        raise BrainLDMError(
            f"{n_folds}-fold cross-validation needs at least {n_folds} distinct groups (images); "
            f"found {uniq.size}. Use fewer folds or more images."
        )
    order = np.random.default_rng(random_state).permutation(uniq.size)
    fold_of_group = np.empty(uniq.size, dtype=np.int64)
    fold_of_group[order] = np.arange(uniq.size) % n_folds
    fold = fold_of_group[inverse]
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_folds)]


def correlation_score(y_true, y_pred, chunk_size=4096):
    """Pearson correlation between true and predicted values, for every target.

    Parameters
    ----------
    y_true : array of shape (n_samples, n_targets) or (n_samples,)
        Read ``chunk_size`` columns at a time, so a memory-mapped array or a
        :class:`brainldm.data.cache.ColumnBlocks` works.
    y_pred : array of the same shape
    chunk_size : int

    Returns
    -------
    r : float array of shape (n_targets,)
        NaN for a target whose true or predicted values are constant.
    """
    if np.shape(y_true) != np.shape(y_pred):
        raise BrainLDMError(f"y_true and y_pred must have the same shape; found {np.shape(y_true)} and "
                            f"{np.shape(y_pred)}")
    if np.ndim(y_true) == 1:
        y_true, y_pred = np.asarray(y_true)[:, None], np.asarray(y_pred)[:, None]
    n_targets = np.shape(y_true)[1]
    r = np.empty(n_targets)
    for start in range(0, n_targets, int(chunk_size)):
        cols = slice(start, min(start + int(chunk_size), n_targets))
        a = np.asarray(y_true[:, cols], dtype=np.float64)
        b = np.asarray(y_pred[:, cols], dtype=np.float64)
        a = a - a.mean(0)
        b = b - b.mean(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            r[cols] = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return r


class GroupRidgeCV(BaseEstimator):
    """Ridge regression with a per-target alpha chosen by K-fold CV grouped by image.

    Parameters
    ----------
    recipe : RidgeRecipe, optional
        What is fitted: the penalties, folds, samples and intercept (default ``RidgeRecipe()``).
    solver : {"auto", "primal", "kernel"}
        ``"primal"`` eigendecomposes ``X.T @ X`` (cheap when n_samples >= n_features),
        ``"kernel"`` eigendecomposes ``X @ X.T`` (cheap when n_features > n_samples);
        ``"auto"`` picks the cheaper one.
    validation : {"auto", "eigenbasis", "predictions"}
        How each alpha's validation error is computed: ``"eigenbasis"`` evaluates all alphas
        from one product per fold in the fold's eigenbasis (module docstring; primal solver
        only), ``"predictions"`` forms every alpha's validation predictions. ``"auto"``: the
        eigenbasis when it is cheaper and at most doubles the folds' memory (primal solver,
        ``n_features < n_alphas * n_val`` and ``n_features <= n_val``).
        Both give the same scores to float32 accuracy.
    chunk_size : int
        Number of targets fitted at once. Memory beyond ``X``, ``Y`` and ``coef_`` is a
        standardised copy of ``X``, the fold decompositions (primal: about
        ``n_folds * (n_features**2 + n_val * n_features)`` floats; kernel: about
        ``n_folds * (n_train**2 + n_val * n_train)``, so fit encoding models with many
        samples on repeat averages), and a few ``(n_samples, chunk_size)`` arrays.
        :meth:`fit_predict` keeps no ``coef_`` and reads ``Y`` a chunk at a time, so its
        memory does not grow with the number of targets.
    device : str or torch.device, optional
        Where the linear algebra runs (``"cpu"``, ``"cuda"``...), in float32; default
        :func:`brainldm.settings.torch_device` (``BRAINLDM_DEVICE``, else CUDA when present).
    progress : bool
        Show tqdm progress bars.

    Attributes
    ----------
    coef_ : float32 array of shape (n_features, n_targets)
        Weights in the original units of ``X`` and ``Y`` (:meth:`fit` only).
    intercept_ : float32 array of shape (n_targets,)
    best_alphas_ : array of shape (n_targets,)
        The alpha chosen for each target.
    cv_scores_ : float32 array of shape (n_alphas, n_targets)
        Validation R^2 of each alpha and target (of standardised ``Y``), averaged over folds.
    constant_ : bool array of shape (n_targets,)
        Targets constant over the training samples (:data:`CONSTANT_TOLERANCE`): predicted as
        that constant, and excluded from accuracy means by :mod:`brainldm.fit.decoding`.
    solver_ : str
        The solver used, ``"primal"`` or ``"kernel"``.
    validation_ : str
        How the validation errors were computed, ``"eigenbasis"`` or ``"predictions"``.
    n_features_in_ : int

    Notes
    -----
    Speed (``benchmarks/ridge.py``, 2026-12-05; NSD scale: 24,980 single trials x 4,000 voxels,
    Takagi's seven alphas, his unshuffled 5 folds, no intercept; ``c`` on 3,696 of its 59,136
    targets; 2 CPU cores, nothing else running, float32 GEMM peak 208 GFLOP/s; the README's
    "Benchmarks" has the rest):

    ===========================  ======  =====  ==============  ===========  ===============  ==========
    method, feature              wall s  CPU s  peak memory GB  agreement r  GFLOP (counted)  GEMM share
    ===========================  ======  =====  ==============  ===========  ===============  ==========
    GroupRidgeCV, z              60.2    116    4.58            1.00000      10,098           0.81
    Takagi's recipe, z           664.2   1,263  10.28           1            116,865          0.85
    GroupRidgeCV, c              50.5    98     3.97            1.00000      8,305            0.79
    Takagi's recipe, c           557.1   1,061  9.07            1            97,405           0.84
    ===========================  ======  =====  ==============  ===========  ===============  ==========

    11.0x faster than the recipe on both features (10.9x in CPU time) with 0.45 of its peak memory:
    the gain is the 11.6x fewer operations (one eigendecomposition per fold, every alpha's validation
    error in the fold's eigenbasis, ``X.T @ Y`` from one row per image), at the same share of the
    machine's GEMM rate. himalaya's ``RidgeCV`` on its torch backend (CPU) solves the same problem
    with the recipe's SVD solver in 692 s (z) and 578 s (c), 11.2 and 9.7 GB; so this engine stays,
    and himalaya is used where it has what this lacks (banded ridge, chapter 9).

    Examples
    --------
    >>> betas, ids = ds.betas("train", roi="early")      # doctest: +SKIP
    >>> model = GroupRidgeCV(RidgeRecipe(n_folds=3)).fit(betas, z_of_image[ids], groups=ids)  # doctest: +SKIP
    >>> r = model.score(test_betas, test_z)  # doctest: +SKIP
    >>> predicted = GroupRidgeCV().fit_predict(betas, Y, ids, test_betas)  # no weights kept  # doctest: +SKIP
    """

    def __init__(self, recipe=None, solver="auto", validation="auto", chunk_size=4096, device=None, progress=True):
        self.recipe = recipe  # what is fitted; the rest is how it is computed
        self.solver, self.validation, self.chunk_size = solver, validation, chunk_size
        self.device, self.progress = device, progress

    def _recipe(self):
        """The recipe in use: ``recipe``, or the default :class:`RidgeRecipe`."""
        return RidgeRecipe() if self.recipe is None else self.recipe

    # --- fitting ---------------------------------------------------------------------
    def fit(self, X, Y, groups):
        """Choose an alpha per target by grouped cross-validation, then refit on all samples.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Inputs, e.g. single-trial betas of an ROI.
        Y : array of shape (n_samples, n_targets) or (n_samples,)
            Targets, e.g. the flattened feature of the image shown on each trial.
            Read a chunk of columns at a time (``Y[:, start:stop]``), so a memory-mapped
            array or a :class:`brainldm.data.cache.ColumnBlocks` works.
        groups : array of shape (n_samples,)
            Group of each sample (the image id); a group is never split across folds.

        Returns
        -------
        self : GroupRidgeCV
        """
        state = self._start(X, Y, groups)
        n_targets = self.best_alphas_.size
        self.coef_ = np.empty((self.n_features_in_, n_targets), dtype=np.float32)
        self.intercept_ = np.empty(n_targets, dtype=np.float32)
        x_mean, x_std = state["x_mean"], state["x_std"]
        for cols, coef, y_mean, y_std in self._fit_chunks(state):
            coef = coef.cpu().numpy().astype(np.float64)
            # Back to original units: y = y_mean + y_std * ((x - x_mean) / x_std) @ coef.
            self.coef_[:, cols] = coef / x_std[:, None] * y_std
            self.intercept_[cols] = y_mean - (x_mean / x_std) @ coef * y_std
        return self

    def fit_predict(self, X, Y, groups, X_test, out=None):
        """Fit as :meth:`fit` does and predict ``X_test``, one chunk of targets at a time.

        The weights of a chunk are used and dropped: memory holds ``X``, its fold
        decompositions (computed once) and one chunk of ``Y``, never the
        (n_features, n_targets) weights, so the number of targets is bounded by disk, not
        memory. ``coef_`` and ``intercept_`` are not set.

        Parameters
        ----------
        X, Y, groups
            As for :meth:`fit`.
        X_test : array of shape (n_test, n_features)
        out : array of shape (n_test, n_targets), optional
            Written a chunk of columns at a time (``out[:, start:stop] = ...``), e.g. a
            :class:`brainldm.data.cache.ColumnBlocks` of a memory-mapped file. Default a new array.

        Returns
        -------
        Y_pred : float32 array of shape (n_test, n_targets), or (n_test,) if ``Y`` is 1-D
            ``out`` if given.
        """
        state = self._start(X, Y, groups)
        for name in ("coef_", "intercept_"):  # a previous fit's weights do not belong to this one
            self.__dict__.pop(name, None)
        X_test = self._check_predict_input(X_test)
        device = state["Xs"].device
        Xt = torch.as_tensor(((X_test - state["x_mean"]) / state["x_std"]).astype(np.float32), device=device)
        if out is None:
            out = np.empty((len(X_test), self.best_alphas_.size), dtype=np.float32)
        for cols, coef, y_mean, y_std in self._fit_chunks(state):
            predicted = (Xt @ coef) * torch.as_tensor(y_std, dtype=torch.float32, device=device)
            predicted += torch.as_tensor(y_mean, dtype=torch.float32, device=device)
            out[:, cols] = predicted.cpu().numpy()
        return out[:, 0] if self._y_was_1d else out

    def _start(self, X, Y, groups):
        """Check the inputs, standardise ``X`` and decompose it for every fold: the state every chunk shares.

        Sets ``solver_``, ``n_features_in_`` and allocates ``best_alphas_`` and ``cv_scores_``.
        """
        self._y_was_1d = np.ndim(Y) == 1
        X, Y, groups, alphas = self._check_fit_inputs(X, Y, groups)
        recipe = self._recipe()
        trial_groups = None
        if recipe.train_on == "averages":
            X, uniq = average_repeats(X, groups)
            trial_groups, groups = groups, uniq  # Y is averaged a chunk at a time
        n_samples, n_features = X.shape
        folds = (group_kfold(groups, recipe.n_folds, recipe.random_state) if recipe.cv == "grouped"
                 else contiguous_kfold(n_samples, recipe.n_folds))
        device = torch_device(self.device)

        # 1. Standardise X (statistics in float64, data in float32).
        x_mean = X.mean(0, dtype=np.float64)
        Xs = X.astype(np.float32)  # a copy, standardised in place
        Xs -= x_mean.astype(np.float32)
        Xs = torch.as_tensor(Xs, device=device)
        x_std = np.sqrt(sum((block * block).sum(0, dtype=torch.float64) for block in Xs.split(4096)).cpu().numpy()
                        / n_samples)  # no float64 copy of X
        x_std[x_std == 0] = 1.0
        Xs /= torch.as_tensor(x_std, dtype=torch.float32, device=device)

        # 2. Decompose the Gram (primal) or kernel matrix once per fold and once for all samples.
        self.solver_ = self._choose_solver(n_samples, n_features)
        self.validation_ = self._choose_validation(n_features, min(val.size for _, val in folds), alphas.size)
        fold_parts, full_part = self._decompose(Xs, folds, alphas.min())

        # 3. Repeated samples of a group: X's rows summed per group, for X.T @ Y of targets that repeat.
        repeats = None
        if self.solver_ == "primal":
            _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
            if first.size < n_samples:
                inverse_t = torch.as_tensor(inverse, device=device)
                sums = torch.zeros(first.size, n_features, device=device).index_add_(0, inverse_t, Xs)
                repeats = (torch.as_tensor(first, device=device), inverse_t, sums)

        n_targets = Y.shape[1]
        self.best_alphas_ = np.empty(n_targets, dtype=alphas.dtype)
        self.cv_scores_ = np.empty((alphas.size, n_targets), dtype=np.float32)
        self.constant_ = np.zeros(n_targets, dtype=bool)
        self.n_features_in_ = n_features
        return {"Xs": Xs, "x_mean": x_mean, "x_std": x_std, "folds": folds, "fold_parts": fold_parts,
                "full_part": full_part, "alphas": alphas, "Y": Y, "trial_groups": trial_groups, "repeats": repeats}

    def _fit_chunks(self, state):
        """Per chunk of the targets ``Y``: validation scores of every alpha, best alpha, refit.

        Records ``best_alphas_`` and ``cv_scores_`` of the chunk and yields ``(cols, coef,
        y_mean, y_std)``: the chunk's columns, its standardised-unit weights (tensor of shape
        (n_features, chunk) on the device) and the targets' means and standard deviations.
        """
        Xs, folds, alphas = state["Xs"], state["folds"], state["alphas"]
        alphas_t = torch.as_tensor(alphas, dtype=torch.float32, device=Xs.device)
        n_targets = self.best_alphas_.size
        chunks = range(0, n_targets, int(self.chunk_size))
        for start in progress_bar(chunks, desc="ridge: target chunks", show=self.progress and len(chunks) > 1):
            cols = slice(start, min(start + int(self.chunk_size), n_targets))
            Yc, y_mean, y_std, constant = self._standardised_chunk(state["Y"], cols, state["trial_groups"],
                                                                   Xs.device, self._recipe().fit_intercept)
            self.constant_[cols] = constant
            XtY = _cross_product(Xs, Yc, state["repeats"]) if self.solver_ == "primal" else None
            scores = torch.zeros(alphas.size, Yc.shape[1], device=Xs.device)
            for part, (train, val) in zip(state["fold_parts"], folds):
                scores += self._validation_r2(part, Xs, Yc, XtY, train, val, alphas_t)
            scores /= len(folds)
            best = scores.argmax(0)
            self.best_alphas_[cols] = alphas[best.cpu().numpy()]
            self.cv_scores_[:, cols] = scores.cpu().numpy()
            yield cols, self._refit(state["full_part"], Xs, Yc, XtY, alphas_t[best]), y_mean, y_std

    def _choose_solver(self, n_samples, n_features):
        if self.solver == "auto":
            return "primal" if n_features <= n_samples else "kernel"
        return self.solver

    def _choose_validation(self, n_features, n_val, n_alphas):
        check_choice("validation", self.validation, VALIDATIONS)
        if self.validation == "eigenbasis" and self.solver_ != "primal":
            raise BrainLDMError('validation="eigenbasis" needs the primal solver (n_features <= n_samples, or '
                                'solver="primal"); use validation="predictions" or "auto"')
        if self.validation != "auto":
            return self.validation
        # per fold and chunk, beside A.T @ Y_val and V.T @ X_train.T @ Y: eigenbasis one (p, p) @ (p, chunk)
        # product (H @ B), predictions one (n_val, p) @ (p, chunk) product per alpha; memory: eigenbasis keeps
        # H (p, p) per fold beside V (p, p) and A (n_val, p), so at most doubles them when p <= n_val
        cheaper = n_features < n_alphas * n_val and n_features <= n_val
        return "eigenbasis" if self.solver_ == "primal" and cheaper else "predictions"

    def _decompose(self, Xs, folds, alpha_min=0.0):
        """Eigendecompositions of every fold's training Gram (or kernel) matrix and of the full one.

        Primal: per fold ``(s, V, A)`` with ``V diag(s) V.T = X_train.T @ X_train`` and
        ``A = X_val @ V``. Kernel: per fold ``(s, U, A)`` with ``U diag(s) U.T = K_train``
        and ``A = K[val, train] @ U``. In both, the validation prediction for alpha is
        ``A @ (B / (s + alpha))`` where ``B`` is ``V.T @ X_train.T @ Y`` or ``U.T @ Y_train``.
        """
        val_grams = None
        if self.validation_ == "eigenbasis":
            # the folds partition the samples: the Gram matrix is the sum of the validation ones (K (p, p)
            # matrices, no larger than Xs since p <= n_val here), which saves its own product
            val_grams = [Xs[_rows(val, Xs.device)].T @ Xs[_rows(val, Xs.device)] for _, val in folds]
            square = val_grams[0].clone()
            for gram in val_grams[1:]:
                square += gram
        else:
            square = Xs.T @ Xs if self.solver_ == "primal" else Xs @ Xs.T
        parts = []
        for k, (train, val) in enumerate(progress_bar(folds, desc=f"ridge: {self.solver_} fold decompositions",
                                                      show=self.progress)):
            if self.solver_ == "primal":
                Xv = Xs[_rows(val, Xs.device)]
                if val_grams is not None:
                    gram, val_grams[k] = val_grams[k], None
                else:
                    gram = Xv.T @ Xv
                gram.neg_().add_(square)  # the training Gram matrix, in place
                s, V = _eigh(gram)
                del gram
                A = Xv @ V
                parts.append(_EigenbasisFold(s, V, A, alpha_min) if self.validation_ == "eigenbasis" else (s, V, A))
            else:
                parts.append(_kernel_fold(square, train, val))
        return parts, _eigh(square)

    def _validation_r2(self, part, Xs, Yc, XtY, train, val, alphas):
        """R^2 of every alpha on one fold's validation samples: shape (n_alphas, chunk)."""
        if isinstance(part, _EigenbasisFold):
            Yv = Yc[_rows(val, Xs.device)]
            E = part.A.T @ Yv  # V.T @ X_val.T @ Y_val
            B = part.V.T @ XtY
            B -= E  # V.T @ X_train.T @ Y_train
            return part.r2(B, E, Yv, alphas)
        s, basis, A = part
        val_t = torch.as_tensor(val, device=Xs.device)
        Yv = Yc[val_t]
        if self.solver_ == "primal":
            B = basis.T @ (XtY - Xs[val_t].T @ Yv)
        else:
            B = basis.T @ Yc[torch.as_tensor(train, device=Xs.device)]
        return _prediction_r2(s, A, B, Yv, alphas)

    def _refit(self, full_part, Xs, Yc, XtY, best_alphas):
        """Standardised-unit weights of shape (n_features, chunk), one alpha per target."""
        s, basis = full_part
        if self.solver_ == "primal":
            return basis @ ((basis.T @ XtY) / (s[:, None] + best_alphas[None, :]))
        dual = basis @ ((basis.T @ Yc) / (s[:, None] + best_alphas[None, :]))
        return Xs.T @ dual

    @staticmethod
    def _standardised_chunk(Y, cols, trial_groups, device, center=True):
        """Columns ``cols`` of ``Y`` as float32 (averaged over ``trial_groups`` if given), standardised;
        with the mean taken out (zeros if not ``center``), the std (float64) and which are constant.

        A constant target is standardised to zeros (its weights are then zero and its
        prediction is its mean), with or without ``center``.
        """
        Yc = np.array(Y[:, cols], dtype=np.float32)  # a copy: standardised in place below
        if trial_groups is not None:
            Yc, _ = average_repeats(Yc, trial_groups)
        if not np.isfinite(Yc).all():
            bad = np.flatnonzero(~np.isfinite(Yc).all(0))[0] + cols.start
            raise BrainLDMError(
                f"Y contains NaN or infinite values (first in target {bad}); "
                "remove or impute them before fitting."
            )
        y_mean = Yc.mean(0, dtype=np.float64)
        Yc = torch.as_tensor(Yc, device=device)
        mean32 = torch.as_tensor(y_mean, dtype=torch.float32, device=device)
        squares = sum(((block - mean32) ** 2).sum(0, dtype=torch.float64) for block in Yc.split(4096))
        y_std = np.sqrt(squares.cpu().numpy() / len(Yc))  # no float64 copy of the chunk
        constant = y_std <= CONSTANT_TOLERANCE * np.maximum(np.abs(y_mean), 1e-6)
        y_std[constant] = 1.0
        if not center:
            y_mean = np.where(constant, y_mean, 0.0)
        Yc -= torch.as_tensor(y_mean, dtype=torch.float32, device=device)
        Yc[:, torch.as_tensor(constant, device=device)] = 0.0
        Yc /= torch.as_tensor(y_std, dtype=torch.float32, device=device)
        return Yc, y_mean, y_std, constant

    def _check_fit_inputs(self, X, Y, groups):
        if not isinstance(self._recipe(), RidgeRecipe):
            raise BrainLDMError(f"recipe must be a RidgeRecipe; found {type(self.recipe).__name__}")
        check_choice("solver", self.solver, SOLVERS)
        X = _check_X(X)
        if np.ndim(Y) == 1:
            Y = np.asarray(Y)[:, None]
        if np.ndim(Y) != 2:
            raise BrainLDMError(f"Y must have shape (n_samples, n_targets); found shape {np.shape(Y)}")
        groups = np.asarray(groups)
        if Y.shape[0] != X.shape[0] or groups.shape != (X.shape[0],):
            raise BrainLDMError(
                f"X, Y and groups must have one row per sample; found X {X.shape}, Y {Y.shape}, "
                f"groups {groups.shape}. Pass the image id of every row of X as groups."
            )
        alphas = np.asarray(self._recipe().alphas, dtype=np.float64)
        if int(self.chunk_size) < 1:
            raise BrainLDMError(f"chunk_size must be a positive integer; found {self.chunk_size!r}")
        return X, Y, groups, alphas

    # --- using a fitted model --------------------------------------------------------
    def predict(self, X):
        """Predict targets in ``Y``'s original units.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)

        Returns
        -------
        Y_pred : float32 array of shape (n_samples, n_targets), or (n_samples,) if fitted on 1-D ``Y``
        """
        if not hasattr(self, "coef_"):
            raise BrainLDMError("this GroupRidgeCV is not fitted yet (fit_predict keeps no weights); "
                                "call fit(X, Y, groups) first")
        X = self._check_predict_input(X)
        Y_pred = X.astype(np.float32, copy=False) @ self.coef_ + self.intercept_
        return Y_pred[:, 0] if self._y_was_1d else Y_pred

    def _check_predict_input(self, X):
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise BrainLDMError(
                f"X has {X.shape[1]} features but the model was fitted on {self.n_features_in_}; "
                "use the same ROI (voxels) or feature as in fit."
            )
        return X

    def score(self, X, Y):
        """Pearson correlation between predictions and ``Y``, per target.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Test inputs, e.g. repeat-averaged test betas.
        Y : array of shape (n_samples, n_targets) or (n_samples,)

        Returns
        -------
        r : array of shape (n_targets,)
        """
        Y_pred = self.predict(X)
        if np.shape(Y) != Y_pred.shape:
            raise BrainLDMError(f"Y must have shape {Y_pred.shape} to match the predictions; found {np.shape(Y)}")
        return correlation_score(Y, Y_pred)


def _check_X(X):
    X = np.asarray(X)
    if X.ndim != 2:
        raise BrainLDMError(f"X must have shape (n_samples, n_features); found shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise BrainLDMError(f"X must be numeric; found dtype {X.dtype}")
    if not np.isfinite(X).all():
        rows = np.flatnonzero(~np.isfinite(X).all(1))
        raise BrainLDMError(
            f"X contains NaN or infinite values in {rows.size} rows (first: {rows[0]}); "
            "remove those samples or voxels (e.g. voxels outside the brain mask) before fitting."
        )
    return X


def _eigh(matrix):
    """Eigenvalues (clipped at 0: the matrices are positive semi-definite) and eigenvectors.

    The eigenvectors overwrite ``matrix``: a symmetric matrix is its own transpose, so its
    transposed view is the column-major layout LAPACK decomposes in place, and the
    decomposition needs only its workspace (about ``2 n**2`` floats) instead of a copy
    besides (the result is the same).
    """
    vectors = matrix.mT
    s = matrix.new_empty(matrix.shape[0])
    torch.linalg.eigh(vectors, out=(s, vectors))
    return s.clamp_(min=0), vectors


def _kernel_fold(K, train, val):
    """One fold of kernel ridge: ``(s, U, A)``, ``U diag(s) U.T = K[train, train]`` and ``A = K[val, train] @ U``."""
    train_t = torch.as_tensor(train, device=K.device)
    s, U = _eigh(K[train_t][:, train_t])  # a copy: decomposed in place
    return s, U, K[torch.as_tensor(val, device=K.device)][:, train_t] @ U


def _prediction_r2(s, A, B, Yv, alphas):
    """R² of every alpha on a fold's validation targets ``Yv``: shape (n_alphas, n_targets).

    ``s`` and ``B`` are the fold's eigenvalues and its training cross-product in their basis
    (``V.T @ X_train.T @ Y_train`` or ``U.T @ Y_train``), ``A`` maps that basis to the
    validation samples: alpha's validation predictions are ``A @ (B / (s + alpha))``.
    """
    total = ((Yv - Yv.mean(0)) ** 2).sum(0)
    scores = torch.empty(len(alphas), Yv.shape[1], dtype=Yv.dtype, device=Yv.device)
    for i, alpha in enumerate(alphas):
        residual = Yv - A @ (B / (s + alpha)[:, None])
        scores[i] = 1 - (residual ** 2).sum(0) / total
    return scores


def kernel_cv_scores(K, Y, folds, alphas):
    """Mean validation R² of kernel ridge regression for every alpha and target, over folds.

    The same computation as :class:`GroupRidgeCV`'s kernel solver, on a precomputed kernel.

    Parameters
    ----------
    K : float tensor of shape (n_samples, n_samples)
        The kernel of the (standardised) samples, e.g. ``X @ X.T``; float64 for exact scores.
    Y : float tensor of shape (n_samples, n_targets)
        Centred targets, of ``K``'s dtype.
    folds : list of (train, val) index arrays
        E.g. :func:`group_kfold`.
    alphas : float tensor of shape (n_alphas,)

    Returns
    -------
    scores : tensor of shape (n_alphas, n_targets)
        Validation R² (of each fold's validation targets about their own mean), averaged over folds.
    """
    scores = torch.zeros(len(alphas), Y.shape[1], dtype=Y.dtype, device=Y.device)
    for train, val in folds:
        s, U, A = _kernel_fold(K, train, val)
        scores += _prediction_r2(s, A, U.T @ Y[torch.as_tensor(train, device=Y.device)],
                                 Y[torch.as_tensor(val, device=Y.device)], alphas)
    return scores / len(folds)


def _rows(index, device):
    """Row selector of sorted indices: a slice (a view, no copy) when they are consecutive."""
    if index.size and index[-1] - index[0] + 1 == index.size:
        return slice(int(index[0]), int(index[-1]) + 1)
    return torch.as_tensor(index, device=device)


def _cross_product(Xs, Yc, repeats, block=4096):
    """``Xs.T @ Yc``; from one row per group when every sample of a group has the same targets.

    ``repeats`` is ``(first, inverse, sums)``: the first sample of each group, the group of each
    sample and ``Xs``'s rows summed per group (or None). Then ``Xs.T @ Yc = sums.T @ Yc[first]``.
    """
    if repeats is not None:
        first, inverse, sums = repeats
        Y_groups = Yc[first]
        if all(torch.equal(Yc[a:a + block], Y_groups[inverse[a:a + block]]) for a in range(0, len(Yc), block)):
            return sums.T @ Y_groups
    return Xs.T @ Yc


class _EigenbasisFold:
    """One fold's eigendecomposition, prepared to score every alpha without validation predictions.

    With ``s``, ``V`` the eigenpairs of the fold's training Gram matrix, ``A = X_val @ V`` and
    ``G = A.T @ A``: ``s_merged`` are the eigenvalues with near-equal ones merged (relative
    :data:`MERGE_TOLERANCE` of ``s + alpha_min``), ``H_kl = G_kl / (s_l - s_k)`` between
    eigenvalues of different merged values (0 within one), and ``G``'s blocks between equal
    merged eigenvalues (its diagonal, plus the rare clusters of several eigenvalues).
    """

    def __init__(self, s, V, A, alpha_min):
        self.V, self.A = V, A
        G = A.T @ A
        s64 = s.double().cpu().numpy()
        start, cluster = 0, np.empty(s64.size, dtype=np.int64)
        for k in range(s64.size):  # ascending: a new cluster when s moves beyond the tolerance
            if s64[k] - s64[start] > MERGE_TOLERANCE * (s64[start] + alpha_min):
                start = k
            cluster[k] = start
        merged = np.bincount(cluster, weights=s64, minlength=s64.size)[cluster] / np.bincount(cluster)[cluster]
        self.s = torch.as_tensor(merged, device=s.device)  # float64
        starts, sizes = np.unique(cluster, return_counts=True)
        self.blocks = [(slice(int(a), int(a + size)), G[a:a + size, a:a + size].clone())
                       for a, size in zip(starts[sizes > 1], sizes[sizes > 1])]
        self.g = G.diagonal().clone()
        self.H = G  # overwritten a block of rows at a time: no (p, p) float64 temporaries
        for a in range(0, len(G), 1024):
            gaps = self.s[None, :] - self.s[a:a + 1024, None]
            same = gaps == 0
            self.H[a:a + 1024] = torch.where(same, 0.0, G[a:a + 1024].double() / torch.where(same, 1.0, gaps))

    def r2(self, B, E, Yv, alphas):
        """Validation R^2 of every alpha, shape (n_alphas, chunk), from ``B = V.T @ X_train.T @ Y_train``
        and ``E = A.T @ Y_val`` (float32 products, float64 sums)."""
        c = self.H @ B
        m = B * self.g[:, None]
        for rows, block in self.blocks:
            m[rows] = block @ B[rows]
        d = 1.0 / (self.s[None, :] + alphas.double()[:, None])  # (n_alphas, p)
        c -= E  # -2 sum_k d_k E_k B_k + 2 sum_k d_k B_k (H B)_k = 2 sum_k d_k B_k (H B - E)_k
        c *= B
        m *= B
        n_val = Yv.shape[0]
        squares = (Yv * Yv).sum(0, dtype=torch.float64)
        total = squares - Yv.sum(0, dtype=torch.float64) ** 2 / n_val
        residual = squares + 2 * (d @ c.double()) + (d * d) @ m.double()
        return (1 - residual / total).float()
