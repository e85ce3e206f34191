"""Scoring the book's analyses against the simulated brain (world only).

The world's subjects are simulated, so what every analysis should find is known:

* **decoding** — how well a feature can be decoded from an ROI is bounded by the ROI's
  tuning, not only by noise. :func:`oracle_decoding` fits the same ridge on the
  noise-free responses (:meth:`WorldDataset.true_signal`) and compares it with the
  decoder fitted on the measured betas;
* **reconstruction** — the generative model itself bounds what a perfect decoder would
  give. :func:`oracle_reconstructions` reconstructs the test images from their true
  ``z`` and ``c`` (what a decoder with r = 1 would hand the sampler), with the same
  settings and seeds as the brain's reconstructions;
* **encoding** — each voxel's true tuning class (``ds.truth["tuning"]``) says which
  feature should win; :mod:`brainldm.encoding` scores its maps against it.
"""

import numpy as np
import torch

from .cache import array_digest, cached_arrays
from .decoding import decode
from .errors import BrainLDMError
from .features import feature_shape, stimulus_features
from .reconstruct import Reconstruction, check_settings, reconstruct
from .ridge import DEFAULT_ALPHAS, GroupRidgeCV, correlation_score

__all__ = ["require_truth", "oracle_decoding", "decoding_against_oracle", "oracle_reconstructions"]
_VERSION = "1"


def require_truth(ds):
    """Raise a clear error unless ``ds`` is a simulated (world) dataset with a known truth."""
    if not hasattr(ds, "true_signal") or not hasattr(ds, "truth"):
        raise BrainLDMError(f"the ground truth is known only for the simulated world; {ds.name!r} has none. "
                            "Run this analysis with dataset='world'.")


def oracle_decoding(ds, models, feature, roi, alphas=DEFAULT_ALPHAS, n_folds=5, random_state=0):
    """Test-set r of ``feature`` decoded from the *noise-free* responses of ``roi``.

    The ridge is fitted on each training image's true response (one sample per image)
    and applied to the test images' true responses: the accuracy a decoder would reach
    with infinitely many repeats.

    Returns
    -------
    r : float array of shape (d,)
        Pearson r of each feature dimension over the test images.
    """
    require_truth(ds)
    mask = ds.roi_mask(roi)
    train_ids, test_ids = ds.image_ids("train"), ds.image_ids("test")
    X, X_test = ds.true_signal(train_ids)[:, mask], ds.true_signal(test_ids)[:, mask]
    Y = stimulus_features(ds, models, feature, train_ids)
    Y_test = stimulus_features(ds, models, feature, test_ids)

    def fit():
        model = GroupRidgeCV(alphas=np.asarray(alphas), n_folds=n_folds, random_state=random_state,
                             progress=False)
        model.fit(X, Y, groups=train_ids)
        return {"predicted": model.predict(X_test).astype(np.float32)}

    params = {"inputs": array_digest(X, X_test, Y), "alphas": np.asarray(alphas).tolist(), "n_folds": n_folds,
              "random_state": random_state}
    predicted = cached_arrays("oracle_decoding", params, _VERSION, fit)["predicted"]
    return correlation_score(Y_test, predicted)


def decoding_against_oracle(ds, models, pairs):
    """Measured and noise-free decoding accuracy of each (feature, roi) in ``pairs``.

    Returns
    -------
    table : pandas DataFrame
        One row per pair: ``measured`` and ``oracle`` mean r over the feature's
        dimensions and their ratio ``fraction`` (how much of what the ROI's tuning
        allows the measured betas reach).
    """
    import pandas as pd

    rows = []
    for feature, roi in pairs:
        measured = float(np.nanmean(decode(ds, models, feature, roi).r))
        oracle = float(np.nanmean(oracle_decoding(ds, models, feature, roi)))
        rows.append({"subject": ds.subject, "feature": feature, "roi": roi, "measured": measured,
                     "oracle": oracle, "fraction": measured / oracle if oracle > 0 else np.nan})
    return pd.DataFrame(rows)


def oracle_reconstructions(ds, models, n_images=None, strength=0.8, guidance_scale=5.0, num_inference_steps=50,
                           n_samples=5, seed=0, batch_size=64):
    """Reconstructions of the test images from their *true* ``z`` and ``c`` (cached).

    The same sampler, settings and seeds as :func:`brainldm.reconstruct.brain_reconstructions`:
    the gap between these and the brain's reconstructions is what decoding loses.

    Returns
    -------
    ids : int array of shape (n,)
    result : Reconstruction
        ``X_z``, ``X_c``, ``X_zc``.
    """
    check_settings(strength, n_samples, num_inference_steps)
    ids = ds.image_ids("test")
    ids = ids if n_images is None else ids[:int(n_images)]
    z = stimulus_features(ds, models, "z", ids).reshape((-1,) + tuple(feature_shape(models, "z")))
    c = stimulus_features(ds, models, "c", ids).reshape((-1,) + tuple(feature_shape(models, "c")))
    params = {"model": models.cache_token, "inputs": array_digest(z, c), "strength": strength,
              "guidance_scale": guidance_scale, "num_inference_steps": num_inference_steps,
              "n_samples": n_samples, "seed": seed, "batch_size": batch_size}
    arrays = cached_arrays("reconstructions", params, _VERSION, lambda: dict(reconstruct(
        models.ldm, torch.from_numpy(z), torch.from_numpy(c), models.uncond, strength=strength,
        guidance_scale=guidance_scale, num_inference_steps=num_inference_steps, n_samples=n_samples, seed=seed,
        batch_size=batch_size)))
    return ids, Reconstruction(arrays)
