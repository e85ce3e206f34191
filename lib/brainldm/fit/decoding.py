"""Decoding: linear maps from fMRI to the LDM's features (Takagi & Nishimoto 2023, section 3.2).

``z`` is decoded from ``early`` visual cortex and ``c`` from ``ventral`` by
default; any feature from any ROI (or list of ROIs) by parameter. The ridge is
fitted on single training trials (repeats of one image kept in one CV fold) and
applied to repeat-averaged test responses, as in the original code.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from brainldm.data.cache import ColumnBlocks, array_digest, cached_arrays, cached_memmaps
from brainldm.features.stimulus import feature_shape, stimulus_features
from brainldm.fit.protocol import protocol_for
from brainldm.fit.ridge import GroupRidgeCV, RidgeRecipe, correlation_score

__all__ = ["DEFAULT_ROIS", "STREAM_ABOVE", "AUTHORS_ALPHAS", "Decoded", "TableSplit", "decode", "decoding_table",
           "fit_predict", "decode_tables", "ridge_recipe"]

#: the authors' penalty grids (``codes/utils/ridge.py``, l. 40–43): z and c; text, GAN and depth features
AUTHORS_ALPHAS = {"z_c": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0], "extensions": [1e4, 2e4, 4e4]}
#: the ROIs Takagi decodes each feature from (NSD streams)
DEFAULT_ROIS = {"z": "early", "c": "ventral"}
#: predictions larger than this (bytes) go to memory-mapped files as they are computed (1 GiB: on NSD
#: ``c`` stays in memory, 232 MB; the extensions' 2.8 million targets, 11 GB, are streamed)
STREAM_ABOVE = 2 ** 30
_VERSION = "2"  # 2: constant targets, the authors' recipe


@dataclass
class Decoded:
    """Test-set predictions of one decoder.

    Attributes
    ----------
    feature : str
    roi : str or list of str
    ids : int array of shape (n_test,)
        Test images, one row each (repeats averaged).
    predicted : float32 array of shape (n_test, d)
        Memory-mapped when :func:`fit_predict` streamed it to disk.
    true : float32 array of shape (n_test, d)
        Memory-mapped with ``predicted`` for :func:`decode_tables`.
    r : float32 array of shape (d,)
        Pearson correlation of each feature dimension across test images; NaN for the
        dimensions that were ``constant`` in training (their correlation is undefined).
    alphas : array of shape (d,)
        Ridge penalty chosen for each dimension.
    n_voxels : int
    constant : bool array of shape (d,)
        Dimensions constant over the training images (e.g. CLIP's first token, the same for
        every caption): predicted as that constant and left out of :meth:`mean_r`.
    """

    feature: str
    roi: object
    ids: np.ndarray
    predicted: np.ndarray
    true: np.ndarray
    r: np.ndarray
    alphas: np.ndarray
    n_voxels: int
    constant: np.ndarray = None

    def __post_init__(self):
        self.constant = (np.zeros(np.shape(self.r), bool) if self.constant is None
                         else np.asarray(self.constant, bool))
        if self.constant.any():
            self.r = np.where(self.constant, np.nan, self.r)

    def mean_r(self):
        """Mean test r over the dimensions that vary (constant ones have none)."""
        return float(np.nanmean(self.r)) if np.isfinite(self.r).any() else float("nan")

    def describe(self):
        """One line: the mean r and over how many dimensions, naming the constant ones left out."""
        scored = int(np.isfinite(self.r).sum())
        line = f"mean r {self.mean_r():.3f} over {scored:,} of {self.r.size:,} dimensions"
        if self.constant.any():
            line += f"; {int(self.constant.sum()):,} constant in training (predicted as their constant)"
        return line

    def unflatten(self, models, which="predicted"):
        """``predicted`` (or ``true``) reshaped to the feature's shape, e.g. (n, 4, h, w) for ``z``."""
        return getattr(self, which).reshape((-1,) + tuple(feature_shape(models, self.feature)))


def fit_predict(X, ids, X_test, Y, cache, version, recipe=None, stream_above=STREAM_ABOVE):
    """Fit a :class:`~brainldm.fit.ridge.GroupRidgeCV` from ``X`` to ``Y`` and predict ``X_test`` (cached).

    ``Y`` is read a chunk of columns at a time either way. Predictions up to ``stream_above``
    bytes come from :meth:`~brainldm.fit.ridge.GroupRidgeCV.fit` and ``predict`` and are returned in
    memory (cached in one ``.npz``); larger ones from
    :meth:`~brainldm.fit.ridge.GroupRidgeCV.fit_predict`, which keeps no weights and writes each
    chunk of predictions to a memory-mapped ``.npy`` file as it is computed on the device
    (:func:`brainldm.data.cache.cached_memmaps`). The two agree to float32 rounding: the fits are
    the same, the weights are applied to ``X_test`` in original or in standardised units.

    Parameters
    ----------
    X : array of shape (n_trials, n_voxels)
    ids : int array of shape (n_trials,)
        Image of each trial: repeats of one image stay in one CV fold.
    X_test : array of shape (n_test, n_voxels)
    Y : array of shape (n_trials, n_targets), or ColumnBlocks
        E.g. a :class:`brainldm.data.cache.ColumnBlocks` of tables with one row per image, indexed
        by the image of each trial (identified by its ``cache_token``, never read whole).
    cache, version : str
        Cache entry name and the version of the code that computes it.
    recipe : brainldm.fit.ridge.RidgeRecipe, optional
        What is fitted (default ``RidgeRecipe()``; the authors': :func:`ridge_recipe`).
    stream_above : int
        Size in bytes of the predictions above which they go to disk as they are computed.

    Returns
    -------
    arrays : dict
        ``predicted`` float32 (n_test, n_targets) (a read-only :class:`numpy.memmap` when
        streamed), the ``alphas`` chosen per target and which targets were ``constant`` in
        training (predicted as that constant).
    """
    recipe = RidgeRecipe() if recipe is None else recipe
    model = GroupRidgeCV(recipe, progress=False)
    inputs = ({"inputs": array_digest(X, ids, X_test), "targets": Y.cache_token} if isinstance(Y, ColumnBlocks)
              else {"inputs": array_digest(X, ids, X_test, Y)})
    params = {**inputs, **recipe.as_dict()}
    shape = (len(X_test), Y.shape[1])

    def in_memory():
        model.fit(X, Y, groups=ids)
        return {"predicted": model.predict(X_test).astype(np.float32), "alphas": model.best_alphas_,
                "constant": model.constant_}

    def stream(folder):
        predicted = np.lib.format.open_memmap(folder / "predicted.npy", mode="w+", dtype=np.float32, shape=shape)
        model.fit_predict(X, Y, ids, X_test, out=ColumnBlocks([predicted]))
        np.save(folder / "alphas.npy", model.best_alphas_)
        np.save(folder / "constant.npy", model.constant_)

    if 4 * shape[0] * shape[1] <= stream_above:
        return cached_arrays(cache, params, version, in_memory)
    return cached_memmaps(cache, params, version, stream)


@dataclass(frozen=True)
class TableSplit:
    """One split of a decoding problem whose targets are stored as tables with one row per image.

    Attributes
    ----------
    X : array of shape (n_rows, n_voxels)
        Betas: single trials (training) or repeat-averaged responses (test).
    ids : int array of shape (n_rows,)
        The image of each row of ``X``: repeats of one image stay in one CV fold.
    tables : dict of str to array of shape (n_images, d)
        Feature name to a table with one row per image (e.g. the memory-mapped files of
        :func:`brainldm.data.cache.cached_memmaps`); the same names in both splits.
    rows : int array of shape (n_rows,)
        The table row of each row of ``X``.
    """

    X: np.ndarray
    ids: np.ndarray
    tables: dict
    rows: np.ndarray

    def targets(self):
        """The tables side by side, indexed by ``rows`` and never read whole (:class:`ColumnBlocks`)."""
        return ColumnBlocks([self.tables[name] for name in self.tables], rows=self.rows)


def decode_tables(train, test, cache, version, roi=None, recipe=None, stream_above=STREAM_ABOVE):
    """Decode several features stored as tables with one row per image, with one ridge fit.

    The features are fitted side by side (one penalty per target, so this equals separate
    fits and shares the costly decompositions of ``X``) without ever holding all of them,
    nor a copy per trial: each chunk of columns is read for the trials through their
    image's row (:class:`brainldm.data.cache.ColumnBlocks`), and the correlations are computed
    a chunk at a time.

    Parameters
    ----------
    train, test : TableSplit
        The training trials and the test images, with the same table names.
    cache, version
        As for :func:`fit_predict`.
    roi : str or list of str, optional
        Recorded in the results.
    recipe, stream_above
        As for :func:`fit_predict`.

    Returns
    -------
    decoded : dict of str to Decoded
        In the order of the tables. ``predicted`` and ``true`` are memory-mapped when the
        predictions were streamed to disk, else in memory.
    """
    names = list(train.tables)
    Y, Y_test = train.targets(), test.targets()
    arrays = fit_predict(train.X, train.ids, test.X, Y, cache, version, recipe, stream_above)
    predicted, alphas = arrays["predicted"], arrays["alphas"]
    r = correlation_score(Y_test, ColumnBlocks([predicted]))
    # streamed: the test tables themselves if their rows are the test images in order (as averaged betas are)
    keep_mapped = isinstance(predicted, np.memmap) and np.array_equal(test.rows, np.arange(len(Y_test.blocks[0])))
    out = {}
    for name, cols in zip(names, Y.slices):
        table = test.tables[name]
        true = table if keep_mapped else np.asarray(table[test.rows], dtype=np.float32)
        out[name] = Decoded(feature=name, roi=roi, ids=np.asarray(test.ids), predicted=predicted[:, cols], true=true,
                            r=r[cols], alphas=alphas[cols], n_voxels=train.X.shape[1],
                            constant=arrays["constant"][cols])
    return out


def ridge_recipe(protocol, targets="z_c", **overrides):
    """The decoders' :class:`~brainldm.fit.ridge.RidgeRecipe` under ``protocol``.

    Parameters
    ----------
    protocol : brainldm.fit.protocol.Protocol
        ``"authors"``: Takagi & Nishimoto's ``codes/utils/ridge.py`` (l. 40–53): StandardScaler
        on the betas, himalaya ``RidgeCV`` without intercept, 5 unshuffled folds, single trials,
        alphas :data:`AUTHORS_ALPHAS`. ``"brainldm"``: folds grouped by image, an intercept,
        :data:`~brainldm.fit.ridge.DEFAULT_ALPHAS` (``RidgeRecipe()``'s defaults).
    targets : {"z_c", "extensions"}
        Which of the authors' alpha grids.
    **overrides
        Fields of the recipe; those that are not None replace the protocol's.

    Returns
    -------
    recipe : brainldm.fit.ridge.RidgeRecipe
    """
    if protocol.ridge == "authors":
        base = RidgeRecipe(alphas=AUTHORS_ALPHAS[targets], cv="contiguous", fit_intercept=False)
    else:
        base = RidgeRecipe()
    return base.replace(**overrides)


def decode(ds, models, feature, roi=None, protocol=None, ridge=None):
    """Fit fMRI → ``feature`` on the training split and predict the test split.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    feature : {"z", "c"}
    roi : str or list of str, optional
        Default :data:`DEFAULT_ROIS` of the feature.
    protocol : brainldm.fit.protocol.Protocol or str, optional
        Its ridge recipe (:func:`ridge_recipe`); default the authors' on NSD, ours on the world.
    ridge : dict, optional
        Overrides of the recipe's fields (``alphas``, ``n_folds``, ``train_on``, ``random_state``...,
        see :class:`brainldm.fit.ridge.RidgeRecipe`).

    Returns
    -------
    decoded : Decoded
    """
    roi = DEFAULT_ROIS[feature] if roi is None else roi
    recipe = ridge_recipe(protocol_for(protocol, ds.name), **(ridge or {}))
    X, ids = ds.betas("train", roi=roi)
    X_test, test_ids = ds.betas("test", roi=roi, average=True)
    Y = stimulus_features(ds, models, feature, ids)
    Y_test = stimulus_features(ds, models, feature, test_ids)

    arrays = fit_predict(X, ids, X_test, Y, "decoding", _VERSION, recipe)
    return Decoded(feature=feature, roi=roi, ids=test_ids, predicted=arrays["predicted"], true=Y_test,
                   r=correlation_score(Y_test, arrays["predicted"]), alphas=arrays["alphas"],
                   n_voxels=X.shape[1], constant=arrays["constant"])


def decoding_table(ds, models, features=("z", "c"), rois=None, **kwargs):
    """Decoding accuracy of every feature from every ROI.

    Returns
    -------
    table : pandas DataFrame
        One row per (feature, roi): ``n_voxels``, the mean and median r over
        the feature's dimensions, and the fraction of dimensions with r > 0.
    """
    rois = rois or ["early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"]
    rows = []
    for feature in features:
        for roi in rois:
            d = decode(ds, models, feature, roi, **kwargs)
            rows.append({"subject": ds.subject, "feature": feature, "roi": roi, "n_voxels": d.n_voxels,
                         "mean_r": d.mean_r(), "median_r": float(np.nanmedian(d.r)),
                         "positive": float(np.mean(d.r[np.isfinite(d.r)] > 0)),
                         "constant": int(d.constant.sum())})
    return pd.DataFrame(rows)
