"""Decoding: linear maps from fMRI to the LDM's features (Takagi & Nishimoto 2023, section 3.2).

``z`` is decoded from ``early`` visual cortex and ``c`` from ``ventral`` by
default; any feature from any ROI (or list of ROIs) by parameter. The ridge is
fitted on single training trials (repeats of one image kept in one CV fold) and
applied to repeat-averaged test responses, as in the original code.
"""

from dataclasses import dataclass

import numpy as np

from .cache import array_digest, cached_arrays
from .features import feature_shape, stimulus_features
from .ridge import DEFAULT_ALPHAS, GroupRidgeCV, correlation_score

__all__ = ["DEFAULT_ROIS", "Decoded", "decode", "decoding_table", "fit_predict"]

#: the ROIs Takagi decodes each feature from (NSD streams)
DEFAULT_ROIS = {"z": "early", "c": "ventral"}
_VERSION = "1"


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
    true : float32 array of shape (n_test, d)
    r : float32 array of shape (d,)
        Pearson correlation of each feature dimension across test images.
    alphas : array of shape (d,)
        Ridge penalty chosen for each dimension.
    n_voxels : int
    """

    feature: str
    roi: object
    ids: np.ndarray
    predicted: np.ndarray
    true: np.ndarray
    r: np.ndarray
    alphas: np.ndarray
    n_voxels: int

    def unflatten(self, models, which="predicted"):
        """``predicted`` (or ``true``) reshaped to the feature's shape, e.g. (n, 4, h, w) for ``z``."""
        return getattr(self, which).reshape((-1,) + tuple(feature_shape(models, self.feature)))


def fit_predict(X, ids, X_test, Y, cache, version, alphas=DEFAULT_ALPHAS, n_folds=5, train_on="trials",
                random_state=0):
    """Fit a :class:`~brainldm.ridge.GroupRidgeCV` from ``X`` to ``Y`` and predict ``X_test`` (cached).

    Parameters
    ----------
    X : array of shape (n_trials, n_voxels)
    ids : int array of shape (n_trials,)
        Image of each trial: repeats of one image stay in one CV fold.
    X_test : array of shape (n_test, n_voxels)
    Y : array of shape (n_trials, n_targets)
    cache, version : str
        Cache entry name and the version of the code that computes it.
    alphas, n_folds, train_on, random_state
        See :class:`brainldm.ridge.GroupRidgeCV`.

    Returns
    -------
    arrays : dict
        ``predicted`` float32 (n_test, n_targets) and the ``alphas`` chosen per target.
    """

    def fit():
        model = GroupRidgeCV(alphas=np.asarray(alphas), n_folds=n_folds, train_on=train_on,
                             random_state=random_state, progress=False)
        model.fit(X, Y, groups=ids)
        return {"predicted": model.predict(X_test).astype(np.float32), "alphas": model.best_alphas_}

    params = {"inputs": array_digest(X, ids, X_test, Y), "alphas": np.asarray(alphas).tolist(),
              "n_folds": n_folds, "train_on": train_on, "random_state": random_state}
    return cached_arrays(cache, params, version, fit)


def decode(ds, models, feature, roi=None, alphas=DEFAULT_ALPHAS, n_folds=5, train_on="trials",
           random_state=0):
    """Fit fMRI → ``feature`` on the training split and predict the test split.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    feature : {"z", "c"}
    roi : str or list of str, optional
        Default :data:`DEFAULT_ROIS` of the feature.
    alphas, n_folds, train_on, random_state
        See :class:`brainldm.ridge.GroupRidgeCV`.

    Returns
    -------
    decoded : Decoded
    """
    roi = DEFAULT_ROIS[feature] if roi is None else roi
    X, ids = ds.betas("train", roi=roi)
    X_test, test_ids = ds.betas("test", roi=roi, average=True)
    Y = stimulus_features(ds, models, feature, ids)
    Y_test = stimulus_features(ds, models, feature, test_ids)

    arrays = fit_predict(X, ids, X_test, Y, "decoding", _VERSION, alphas, n_folds, train_on, random_state)
    return Decoded(feature=feature, roi=roi, ids=test_ids, predicted=arrays["predicted"], true=Y_test,
                   r=correlation_score(Y_test, arrays["predicted"]), alphas=arrays["alphas"],
                   n_voxels=X.shape[1])


def decoding_table(ds, models, features=("z", "c"), rois=None, **kwargs):
    """Decoding accuracy of every feature from every ROI.

    Returns
    -------
    table : pandas DataFrame
        One row per (feature, roi): ``n_voxels``, the mean and median r over
        the feature's dimensions, and the fraction of dimensions with r > 0.
    """
    import pandas as pd

    rois = rois or ["early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"]
    rows = []
    for feature in features:
        for roi in rois:
            d = decode(ds, models, feature, roi, **kwargs)
            rows.append({"subject": ds.subject, "feature": feature, "roi": roi, "n_voxels": d.n_voxels,
                         "mean_r": float(np.nanmean(d.r)), "median_r": float(np.nanmedian(d.r)),
                         "positive": float(np.mean(d.r > 0))})
    return pd.DataFrame(rows)
