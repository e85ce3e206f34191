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
* **encoding** — each voxel's true tuning class (``ds.ground_truth["tuning"]``) says which
  feature should win; :mod:`brainldm.fit.encoding` scores its maps against it;
  :func:`early_cortex_diagnosis` asks why ``z`` does or does not beat ``c`` in early
  visual cortex (issue 18): on noise-free responses, with feature counts equalised, on
  the contrast energy early voxels are tuned to, and as the training set grows.
"""
from dataclasses import dataclass

import numpy as np
import torch

from brainldm.data.cache import array_digest, cached_arrays
from brainldm.fit.decoding import decode
from brainldm.errors import BrainLDMError
from brainldm.features.stimulus import feature_shape, stimulus_features
from brainldm.generate.reconstruction import Reconstruction, reconstruct
from brainldm.models.ldm import sampler_settings
from brainldm.fit.ridge import DEFAULT_ALPHAS, GroupRidgeCV, correlation_score

__all__ = ["require_truth", "oracle_decoding", "decoding_against_oracle", "oracle_reconstructions",
           "EarlyCortexDiagnosis", "early_cortex_diagnosis", "DIAGNOSIS_ROIS", "TRAINING_SIZES"]
_VERSION = "1"


def require_truth(ds):
    """Raise a clear error unless ``ds`` is a simulated (world) dataset with a known truth."""
    if not ds.has_ground_truth:
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


def oracle_reconstructions(ds, models, settings=None, n_images=None):
    """Reconstructions of the test images from their *true* ``z`` and ``c`` (cached).

    The same sampler, settings and seeds as :func:`brainldm.generate.reconstruction.brain_reconstructions`:
    the gap between these and the brain's reconstructions is what decoding loses.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    settings : brainldm.models.ldm.SamplerSettings, optional
        Default: :func:`brainldm.models.ldm.sampler_settings` of the dataset.
    n_images : int, optional
        The first ``n_images`` test images (all by default).

    Returns
    -------
    ids : int array of shape (n,)
    result : Reconstruction
        ``X_z``, ``X_c``, ``X_zc``.
    """
    settings = settings or sampler_settings(ds.name)
    ids = ds.image_ids("test")
    ids = ids if n_images is None else ids[:int(n_images)]
    z = stimulus_features(ds, models, "z", ids).reshape((-1,) + tuple(feature_shape(models, "z")))
    c = stimulus_features(ds, models, "c", ids).reshape((-1,) + tuple(feature_shape(models, "c")))
    params = {"model": models.cache_token, "inputs": array_digest(z, c), **settings.as_dict()}
    arrays = cached_arrays("reconstructions", params, _VERSION, lambda: dict(reconstruct(
        models.ldm, torch.from_numpy(z), torch.from_numpy(c), models.uncond, settings)))
    return ids, Reconstruction(arrays)


# --- why z does or does not beat c in early visual cortex (issue 18) ---------------------
#: the ROIs of the diagnosis: the early areas one by one, and the ventral stream for contrast
DIAGNOSIS_ROIS = ("V1", "V2", "V3", "ventral")
#: training images of the learning curve (NSD has 8,859 per subject)
TRAINING_SIZES = (700, 1000, 2000, 4000)
_POSITION_SENTENCE = ("The main object is on the left.", "The main object is in the middle.",
                      "The main object is on the right.")


@dataclass
class EarlyCortexDiagnosis:
    """What :func:`early_cortex_diagnosis` measured; every table has ``roi``, ``mean``, ``ci_low``, ``ci_high``.

    Attributes
    ----------
    noise_free : pandas DataFrame
        Test r of encoding models fitted on the *noise-free* responses, one row per
        ``feature`` and ``roi``: ``z``, ``c``, both reduced to ``n_components`` principal
        components (``z (PCA k)``, ``c (PCA k)``), and ``c + position`` (each image's
        captions plus a sentence that states where its main object is).
    contrast_energy : pandas DataFrame
        Test r of the same models predicting each voxel's true *low-level drive* (the
        contrast energy in its pRF, before noise and before mixing with its other
        drives), plus one-hot ``scene attributes`` (place, categories, colours, size,
        position, number of objects) and those attributes ``without position and size``.
    by_training_size : pandas DataFrame
        ``n_train`` and ``z - c`` on the measured (noisy) responses as the training set
        grows, with ``z`` and ``c`` (ROI mean r) and a ``verdict``.
    n_components : int
    """

    noise_free: object
    contrast_energy: object
    by_training_size: object
    n_components: int

    def crossover(self, roi="V1"):
        """The smallest training size at which ``z - c`` in ``roi`` is above 0, or None."""
        rows = self.by_training_size[(self.by_training_size["roi"] == roi) & (self.by_training_size["mean"] > 0)]
        return int(rows["n_train"].min()) if len(rows) else None


def _pca(X, n_train, k):
    """``X`` standardised on its training rows and projected on their first ``k`` principal axes."""
    X = np.asarray(X, dtype=np.float64)
    mean, std = X[:n_train].mean(0), X[:n_train].std(0) + 1e-8
    X = (X - mean) / std
    axes = np.linalg.svd(X[:n_train], full_matrices=False)[2][:k]
    return (X @ axes.T).astype(np.float32)


def _attributes_one_hot(scenes, keys):
    from brainldm.models.world.nets import ATTRIBUTES, scene_attributes

    values = scene_attributes(scenes)
    return np.concatenate([np.eye(ATTRIBUTES[k], dtype=np.float32)[values[k]] for k in keys], axis=1)


def _fit_table(data, features, rois, ds, n_boot, seed):
    from brainldm.fit.encoding import fit_encoders, roi_scores

    results = fit_encoders(data, features, seed=seed, progress=False)
    return roi_scores(data, results, list(rois), ds, n_boot=n_boot, seed=seed).table()


def early_cortex_diagnosis(ds, models, n_train=None, n_components=100, sizes=TRAINING_SIZES, rois=DIAGNOSIS_ROIS,
                           n_boot=1000, seed=0):
    """Why ``z`` does or does not predict early visual cortex better than ``c`` on the world.

    Four measurements, each with bootstrap intervals over the test images:

    1. *noise-free responses* — is the gap in what ``z`` and ``c`` carry, or in noise?
    2. *equal feature counts* — ``c`` has 12 times ``z``'s dimensions; both cut to
       ``n_components`` principal components (fitted on the training images);
    3. *contrast energy* — the drive early voxels are tuned to (their pRF's oriented
       contrast energy, Kay et al. 2013), predicted from ``z``, from ``c``, and from
       the scene attributes a caption can name, with and without position and size;
    4. *training size* — ``z - c`` on the measured responses with ``sizes`` training
       images (the same test images; the world renders as many as asked).

    Parameters
    ----------
    ds : WorldDataset
    models : ModelSet
    n_train : int, optional
        Training images of measurements 1–3 (default: as :func:`brainldm.fit.encoding.encoding_data`).
    n_components : int
    sizes : sequence of int
        Training sizes of measurement 4.
    rois : sequence of str
    n_boot, seed : int

    Returns
    -------
    diagnosis : EarlyCortexDiagnosis
    """
    import pandas as pd

    from brainldm.data.datasets.world import brain as brain_model
    from brainldm.fit.encoding import EncodingData, encoding_data, fit_encoders, roi_scores

    require_truth(ds)
    data = encoding_data(ds, n_train=n_train)
    ids, n_fit = data.ids, len(data.train_ids)
    z = stimulus_features(ds, models, "z", ids)
    c = stimulus_features(ds, models, "c", ids)
    scenes = ds.scenes(ids)
    from brainldm.models.world.nets import scene_attributes

    captions = [caps + [_POSITION_SENTENCE[p]] for caps, p in
                zip(scenes.captions, scene_attributes(scenes)["position"])]
    c_position = models.text_encoder.encode_captions(captions).reshape(len(ids), -1).numpy()
    k = min(int(n_components), n_fit - 1)
    features = {"z": z, "c": c, f"z (PCA {k})": _pca(z, n_fit, k), f"c (PCA {k})": _pca(c, n_fit, k),
                "c + position": c_position}

    def truth_data(Y):
        return EncodingData(subject=data.subject, train_ids=data.train_ids, Y_train=Y[:n_fit],
                            test_ids=data.test_ids, Y_test=Y[n_fit:], noise_ceiling=np.full(Y.shape[1], 100.0))

    noise_free = _fit_table(truth_data(ds.true_signal(ids)), features, rois, ds, n_boot, seed)
    low = brain_model.drives(brain_model.stimulus_features(scenes), ds.ground_truth)[0].astype(np.float32)
    attributes = {"scene attributes": _attributes_one_hot(
                      scenes, ["place", "category", "color", "size", "position", "n_objects"]),
                  "without position and size": _attributes_one_hot(scenes, ["place", "category", "color",
                                                                             "n_objects"])}
    energy = _fit_table(truth_data(low), {"z": z, "c": c, **attributes}, rois, ds, n_boot, seed)

    big = type(ds)(subject=ds.subject, seed=ds.seed, n_train=max(sizes), n_test=ds.design.n_test,
                   n_repeats=ds.design.n_repeats, image_size=ds.image_size, voxel_upsample=ds.voxel_upsample)
    every = encoding_data(big, n_train=max(sizes))  # features of all images once; each size takes its rows
    n_big = len(every.train_ids)
    all_feats = {name: stimulus_features(big, models, name, every.ids) for name in ("z", "c")}
    rows = []
    for size in sizes:
        sized = encoding_data(big, n_train=size)
        keep = np.r_[0:size, n_big:n_big + len(sized.test_ids)]
        feats = {name: values[keep] for name, values in all_feats.items()}
        scores = roi_scores(sized, fit_encoders(sized, feats, seed=seed, progress=False), list(rois), big,
                            n_boot=n_boot, seed=seed)
        table = scores.contrast("z", "c")
        means = scores.table().pivot(index="roi", columns="feature", values="mean")
        table["z"], table["c"] = means.loc[table["roi"], "z"].values, means.loc[table["roi"], "c"].values
        rows.append(table.assign(n_train=size))
    curve = pd.concat(rows, ignore_index=True)[["n_train", "roi", "z", "c", "mean", "ci_low", "ci_high", "verdict"]]
    return EarlyCortexDiagnosis(noise_free=noise_free, contrast_energy=energy, by_training_size=curve,
                                n_components=k)
