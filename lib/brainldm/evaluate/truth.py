"""Scoring the book's analyses against the simulated brain (world only).

The world's subjects are simulated, so what every analysis should find is known:

* **noise ceilings** — :func:`noise_ceiling_check` puts the ceiling estimated from repeats
  beside the one the simulated signal-to-noise gives;
* **decoding** — how well a feature can be decoded from an ROI is bounded by the ROI's
  tuning, not only by noise. :func:`oracle_decoding` fits the same ridge on the
  noise-free responses (:meth:`WorldDataset.true_signal`) and compares it with the
  decoder fitted on the measured betas;
* **reconstruction** — the generative model itself bounds what a perfect decoder would
  give: :mod:`brainldm.generate.oracle` (above this layer, beside the brain's reconstructions);
  and the scenes' true places say how much of a reconstruction's identification is the
  place its caption names: :func:`identification_by_place`;
* **encoding** — each voxel's true tuning class (``ds.ground_truth["tuning"]``) says which
  feature should win: :func:`tuning_agreement` scores the winners of the encoding models,
  :func:`by_true_tuning` averages any per-voxel measure over the voxels of each class, and
  :func:`early_cortex_diagnosis` asks why ``z`` does or does not beat ``c`` in early
  visual cortex: on noise-free responses, with feature counts equalised, on the contrast
  energy early voxels are tuned to, and as the training set grows.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd

from brainldm.data.cache import array_digest, cached_arrays
from brainldm.data.datasets.world.brain import TUNING_CLASSES
from brainldm.data.noise import noise_ceiling
from brainldm.errors import BrainLDMError, check_choice
from brainldm.evaluate.metrics import (IDENTIFICATION_COLUMNS, column_correlations, identification_from_correlations,
                                       match_size)
from brainldm.evaluate.paired import paired_differences
from brainldm.features.stimulus import stimulus_features
from brainldm.fit.decoding import decode
from brainldm.fit.encoding import EncodingData, best_feature, encoding_data, fit_encoders, roi_scores
from brainldm.fit.ridge import GroupRidgeCV, RidgeRecipe, correlation_score
from brainldm.models.world.nets import ATTRIBUTES, scene_attributes

__all__ = ["require_truth", "NoiseCeilingCheck", "noise_ceiling_check", "oracle_decoding", "DECODING_PAIRS",
           "decoding_against_oracle",
           "TUNING_OF_FEATURE", "true_tuning", "truth_agreement", "by_true_tuning", "TuningAgreement", "tuning_agreement",
           "PLACE_METHODS", "PLACE_COLUMNS", "PlaceIdentification", "identification_by_place",
           "EarlyCortexDiagnosis", "early_cortex_diagnosis", "DIAGNOSIS_ROIS", "TRAINING_SIZES"]
_VERSION = "1"


def require_truth(ds):
    """Raise a clear error unless ``ds`` is a simulated (world) dataset with a known truth."""
    if not ds.has_ground_truth:
        raise BrainLDMError(f"the ground truth is known only for the simulated world; {ds.name!r} has none. "
                            "Run this analysis with dataset='world'.")


# --- noise ceilings ----------------------------------------------------------------------
@dataclass
class NoiseCeilingCheck:
    """Every voxel's noise ceiling estimated from repeats, beside the simulated one.

    Attributes
    ----------
    estimated, true : float arrays of shape (n_voxels,)
        % of the variance of the repeat-averaged test responses that is explainable: from the
        spread of the repeats (NSD's ``ncsnr``), and from the simulation's own ncsnr.
    n_average : float
        Repeats averaged per test image.
    """

    estimated: np.ndarray
    true: np.ndarray
    n_average: float

    @property
    def r(self):
        """Correlation over voxels of the estimated and the true ceilings."""
        return float(np.corrcoef(self.estimated, self.true)[0, 1])

    def summary(self):
        """The correlation, the medians of both and the number of voxels."""
        return pd.Series({"r (estimated, true)": self.r, "median estimated (%)": float(np.median(self.estimated)),
                          "median true (%)": float(np.median(self.true)), "voxels": self.estimated.size},
                         name="noise ceiling")


def noise_ceiling_check(ds):
    """The noise ceiling of every voxel estimated from the test repeats, against the simulated truth.

    Returns
    -------
    check : NoiseCeilingCheck
    """
    require_truth(ds)
    n_average = float(np.unique(ds.betas("test")[1], return_counts=True)[1].mean())
    return NoiseCeilingCheck(estimated=ds.noise_ceiling("test"),
                             true=noise_ceiling(ds.ground_truth["ncsnr"], n_average), n_average=n_average)


# --- decoding ----------------------------------------------------------------------------
def oracle_decoding(ds, models, feature, roi, recipe=None):
    """Test-set r of ``feature`` decoded from the *noise-free* responses of ``roi``.

    The ridge is fitted on each training image's true response (one sample per image)
    and applied to the test images' true responses: the accuracy a decoder would reach
    with infinitely many repeats.

    Parameters
    ----------
    ds : WorldDataset
    models : ModelSet
    feature : {"z", "c"}
    roi : str
    recipe : brainldm.fit.ridge.RidgeRecipe, optional
        Default ``RidgeRecipe()``.

    Returns
    -------
    r : float array of shape (d,)
        Pearson r of each feature dimension over the test images.
    """
    require_truth(ds)
    recipe = RidgeRecipe() if recipe is None else recipe
    mask = ds.roi_mask(roi)
    train_ids, test_ids = ds.image_ids("train"), ds.image_ids("test")
    X, X_test = ds.true_signal(train_ids)[:, mask], ds.true_signal(test_ids)[:, mask]
    Y = stimulus_features(ds, models, feature, train_ids)
    Y_test = stimulus_features(ds, models, feature, test_ids)

    def fit():
        model = GroupRidgeCV(recipe, progress=False).fit(X, Y, groups=train_ids)
        return {"predicted": model.predict(X_test).astype(np.float32)}

    params = {"inputs": array_digest(X, X_test, Y), **recipe.as_dict()}
    predicted = cached_arrays("oracle_decoding", params, _VERSION, fit)["predicted"]
    return correlation_score(Y_test, predicted)


#: the (feature, ROI) pairs chapter 14 decodes: the paper's two, and each feature from the other's ROI
DECODING_PAIRS = (("z", "early"), ("z", "ventral"), ("c", "ventral"), ("c", "early"))


def decoding_against_oracle(ds, models, pairs=DECODING_PAIRS):
    """Measured and noise-free decoding accuracy of each (feature, roi) in ``pairs``.

    Returns
    -------
    table : pandas DataFrame
        One row per pair: ``pair`` (``"z from early"``), ``measured`` and ``oracle`` mean r over
        the feature's dimensions and their ratio ``fraction`` (how much of what the ROI's tuning
        allows the measured betas reach).
    """
    rows = []
    for feature, roi in pairs:
        measured = float(np.nanmean(decode(ds, models, feature, roi).r))
        oracle = float(np.nanmean(oracle_decoding(ds, models, feature, roi)))
        rows.append({"subject": ds.subject, "feature": feature, "roi": roi, "pair": f"{feature} from {roi}",
                     "measured": measured, "oracle": oracle, "fraction": measured / oracle if oracle > 0 else np.nan})
    return pd.DataFrame(rows)


# --- encoding ----------------------------------------------------------------------------
#: the simulated tuning class (:data:`brainldm.data.datasets.world.brain.TUNING_CLASSES`) each LDM feature stands for
TUNING_OF_FEATURE = {"z": "low-level", "c": "semantic"}


def true_tuning(ds):
    """Each voxel's simulated tuning class (:data:`~brainldm.data.datasets.world.brain.TUNING_CLASSES`): str array."""
    require_truth(ds)
    return np.array(TUNING_CLASSES)[ds.ground_truth["tuning"]]


def truth_agreement(ds, winner, classes, voxels=None):
    """How often the winning feature's class is the voxel's true tuning class (world only).

    Parameters
    ----------
    ds : WorldDataset
        Its ``ground_truth["tuning"]`` indexes :data:`brainldm.data.datasets.world.brain.TUNING_CLASSES`.
    winner : int array of shape (n_voxels,)
        Index of the winning model per voxel (-1: none).
    classes : list of str
        The tuning class each model index stands for (e.g. ``["low-level", "semantic"]``).
    voxels : bool array of shape (n_voxels,), optional
        Voxels to score (default: every voxel with a winner whose true class is one of
        ``classes``).

    Returns
    -------
    agreement : dict
        ``fraction`` agreeing, ``n`` voxels scored, ``chance`` (agreement of a winner drawn
        independently with the same frequencies), and ``confusion`` (pandas DataFrame of
        counts, true class × winning class).
    """
    true = true_tuning(ds)
    won = np.where(winner >= 0, np.array(classes, dtype=object)[np.clip(winner, 0, None)], None)
    keep = (winner >= 0) & np.isin(true, classes)
    if voxels is not None:
        keep &= np.asarray(voxels, bool)
    confusion = pd.crosstab(pd.Series(true[keep], name="true tuning"), pd.Series(won[keep], name="winner"))
    confusion = confusion.reindex(index=list(dict.fromkeys(classes)), columns=list(dict.fromkeys(classes)),
                                  fill_value=0)
    n = int(keep.sum())
    fraction = float((true[keep] == won[keep]).mean()) if n else float("nan")
    if n:
        p_true = confusion.sum(1).to_numpy() / n
        p_won = confusion.sum(0).to_numpy() / n
        chance = float((p_true * p_won).sum())
    else:
        chance = float("nan")
    return {"fraction": fraction, "n": n, "chance": chance, "confusion": confusion}


def by_true_tuning(ds, values, voxels=None, classes=("low-level", "semantic")):
    """The mean of per-voxel measures over the voxels of each true tuning class (world only).

    What chapters 10–12 ask of their maps: does a latent gain more on ``z`` in semantic voxels
    than in low-level ones, does a low-level voxel prefer outer U-Net layers?

    Parameters
    ----------
    ds : WorldDataset
    values : dict of str to array of shape (n_voxels,)
        Name to a per-voxel measure (NaN: left out), e.g. r(latent) − r(z).
    voxels : bool array of shape (n_voxels,), optional
        Voxels to average over (default all), e.g. those some model predicts significantly.
    classes : pair of str
        The classes compared; the last column is the second minus the first.

    Returns
    -------
    table : pandas DataFrame
        One row per name, one column per class, and ``"<second> − <first>"``.
    """
    for name in classes:
        check_choice("tuning class", name, TUNING_CLASSES)
    true = true_tuning(ds)
    keep = np.ones(true.size, bool) if voxels is None else np.asarray(voxels, bool)
    table = pd.DataFrame({cls: [float(np.nanmean(np.where(keep & (true == cls), np.asarray(v, float), np.nan)))
                                if (keep & (true == cls) & np.isfinite(v)).any() else np.nan
                                for v in values.values()] for cls in classes}, index=list(values))
    table[f"{classes[-1]} − {classes[0]}"] = table[classes[-1]] - table[classes[0]]
    return table


@dataclass
class TuningAgreement:
    """Which feature predicts each voxel best, scored against the voxel's true tuning class.

    Made by :func:`tuning_agreement`; :meth:`report` says it in words and tables.

    Attributes
    ----------
    winner : int array of shape (n_voxels,)
        Index into ``names`` of the best model among those significant (-1: none is).
    names : list of str
        The competing models.
    classes : list of str
        The tuning class each stands for (:data:`TUNING_OF_FEATURE`).
    overall : dict
        :func:`truth_agreement` over every scored voxel.
    by_roi : pandas DataFrame
        Per ROI: ``voxels scored``, ``agreement`` and ``chance``.
    """

    winner: np.ndarray
    names: list
    classes: list
    overall: dict
    by_roi: pd.DataFrame

    def describe(self):
        """One line: how often the winner is the voxel's true class, beside chance."""
        o = self.overall
        return (f"winner matches the true tuning class in {o['fraction']:.1%} of {o['n']} voxels "
                f"(chance {o['chance']:.1%})")

    def report(self, digits=3):
        """:meth:`describe`, the confusion table (true class × winner) and the agreement per ROI, as text."""
        parts = [self.describe(), self.overall["confusion"].to_string()]
        if len(self.by_roi):
            parts.append(self.by_roi.round(digits).to_string(index=False))
        return "\n\n".join(parts)


def tuning_agreement(ds, results, names=("z", "c"), rois=()):
    """How often the best of several encoding models stands for the voxel's true tuning class (world only).

    Parameters
    ----------
    ds : WorldDataset
    results : dict of str to EncodingResult
        Their ``significant`` voxels (the one significance rule) decide which voxels are scored.
    names : sequence of str
        Competing models, each a key of :data:`TUNING_OF_FEATURE`.
    rois : sequence of str
        ROIs scored one by one in :attr:`TuningAgreement.by_roi`.

    Returns
    -------
    agreement : TuningAgreement
    """
    require_truth(ds)
    classes = [TUNING_OF_FEATURE[check_choice("feature", name, TUNING_OF_FEATURE)] for name in names]
    winner, names = best_feature(results, names)
    rows = []
    for roi in rois:
        part = truth_agreement(ds, winner, classes, voxels=ds.roi_mask(roi))
        rows.append({"roi": roi, "voxels scored": part["n"], "agreement": part["fraction"], "chance": part["chance"]})
    return TuningAgreement(winner, names, classes, truth_agreement(ds, winner, classes),
                           pd.DataFrame(rows, columns=["roi", "voxels scored", "agreement", "chance"]))


# --- what the captions name: identification within a place -----------------------------
#: the reconstructions :func:`identification_by_place` scores, and the layers the paper's claim names
PLACE_METHODS = {"z-only": "X_z", "c-only": "X_c"}
PLACE_COLUMNS = ("CLIP early", "CNN early", "CLIP late", "CNN late")


@dataclass
class PlaceIdentification:
    """What :func:`identification_by_place` measured.

    Attributes
    ----------
    scores : pandas DataFrame
        One row per (subject, method, metric, image) with ``score``; ``metric`` is
        ``"<column>, same place"`` or ``"<column>, other place"``. An image alone in its place
        has no same-place row.
    changes : pandas DataFrame
        :func:`brainldm.evaluate.paired.paired_differences` of the first method against the
        second (``z``-only against ``c``-only), per subject and (with several) their mean.
    """

    scores: pd.DataFrame
    changes: pd.DataFrame

    def _summary(self):
        """The changes' rows of the mean over subjects (of the only subject, if one)."""
        subjects = set(self.changes["subject"])
        return self.changes[self.changes["subject"] == ("mean" if "mean" in subjects else subjects.pop())]

    def table(self):
        """Each split's mean of both methods and the paired change with its 95% CI (mean over subjects)."""
        first, second = dict.fromkeys(self.scores["method"])
        return self._summary()[["metric", "baseline", "value", "change", "ci_low", "ci_high"]].rename(
            columns={"baseline": second, "value": first}).reset_index(drop=True)

    def describe(self, digits=3):
        """The table, then one line per split: is the first method above the second beyond its CI?"""
        first, second = dict.fromkeys(self.scores["method"])
        lines = [self.table().round(digits).to_string(index=False)]
        for _, r in self._summary().iterrows():
            verdict = "above" if r["ci_low"] > 0 else "below" if r["ci_high"] < 0 else "not clearly apart from"
            lines.append(f"{r['metric']}: {first} {verdict} {second}, {r['change']:+.{digits}f} (95% CI "
                         f"{r['ci_low']:+.{digits}f} to {r['ci_high']:+.{digits}f}; higher in "
                         f"{round(r['improved'] * r['n'])} of {r['n']} images)")
        return "\n".join(lines)


def identification_by_place(models, reconstructions, columns=PLACE_COLUMNS, methods=None):
    """Two-way identification of each test image against the images of its own place, and of the other places.

    The world's captions name the place, and the place sets most of an image's background (sky,
    ground, walls), so a ``c``-only reconstruction draws about the right background with no
    low-level information from the brain. Against images of another place an early layer rewards
    that background; against images of the same place only what the reconstruction has of this
    image beyond its place counts. (The authors' rule, :func:`identification_from_correlations`
    with ``among``.)

    Parameters
    ----------
    models : ModelSet
    reconstructions : brainldm.generate.reconstruction.SubjectReconstructions
        Of world subjects.
    columns : sequence of str
        Keys of :data:`~brainldm.evaluate.metrics.IDENTIFICATION_COLUMNS`.
    methods : dict of str to str, optional
        Method name -> reconstruction key (default :data:`PLACE_METHODS`).

    Returns
    -------
    PlaceIdentification
    """
    methods = methods or PLACE_METHODS
    if len(methods) != 2:
        raise BrainLDMError(f"identification_by_place compares two methods, got {list(methods)}")
    rows = []
    for ds in reconstructions.datasets:
        require_truth(ds)
        ids, recon = reconstructions.reconstruct(ds)
        place = ds.scenes(ids).place
        same = place[:, None] == place[None, :]
        orig, features = ds.images(ids), {}
        for method, key in methods.items():
            r = column_correlations(models, orig, match_size(orig, recon[key]),
                                    {c: IDENTIFICATION_COLUMNS[c] for c in columns}, features)
            for column in columns:
                for where, among in (("same place", same), ("other place", ~same)):
                    score = identification_from_correlations(r[column], among=among)
                    rows += [{"subject": ds.subject, "method": method, "metric": f"{column}, {where}", "image": i,
                              "score": value} for i, value in zip(ids, score) if not np.isnan(value)]
    scores = pd.DataFrame(rows, columns=["subject", "method", "metric", "image", "score"])
    return PlaceIdentification(scores, paired_differences(scores, baseline=list(methods)[1]))


# --- why z does or does not beat c in early visual cortex -------------------------------
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
    low_level : pandas DataFrame
        Test r of the same models predicting each voxel's true *low-level drive* (the
        contrast energy and colour in its pRF, before noise and before mixing with its other
        drives), plus one-hot ``scene attributes`` (place, categories, colours, size,
        position, number of objects) and those attributes ``without position and size``.
    by_training_size : pandas DataFrame
        ``n_train`` and ``z - c`` on the measured (noisy) responses as the training set
        grows, with ``z`` and ``c`` (ROI mean r) and a ``verdict``.
    n_components : int
    """

    noise_free: object
    low_level: object
    by_training_size: object
    n_components: int

    def means(self, table="noise_free"):
        """ROI means of ``noise_free`` or ``low_level``: one row per feature, one column per ROI."""
        check_choice("table", table, ("noise_free", "low_level"))
        return getattr(self, table).pivot(index="feature", columns="roi", values="mean")

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
    values = scene_attributes(scenes)
    return np.concatenate([np.eye(ATTRIBUTES[k], dtype=np.float32)[values[k]] for k in keys], axis=1)


def _fit_table(data, features, rois, ds, n_boot, seed):
    results = fit_encoders(data, features, seed=seed, progress=False)
    return roi_scores(data, results, list(rois), ds, n_boot=n_boot, seed=seed).table()


def early_cortex_diagnosis(ds, models, n_train=None, n_components=100, sizes=TRAINING_SIZES, rois=DIAGNOSIS_ROIS,
                           n_boot=1000, seed=0):
    """Why ``z`` does or does not predict early visual cortex better than ``c`` on the world.

    Four measurements, each with bootstrap intervals over the test images:

    1. *noise-free responses* — is the gap in what ``z`` and ``c`` carry, or in noise?
    2. *equal feature counts* — ``c`` has 12 times ``z``'s dimensions; both cut to
       ``n_components`` principal components (fitted on the training images);
    3. *low-level drive* — what early voxels are tuned to (their pRF's oriented
       contrast energy, Kay et al. 2013, and colour), predicted from ``z``, from ``c``, and from
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
    require_truth(ds)
    data = encoding_data(ds, n_train=n_train)
    ids, n_fit = data.ids, len(data.train_ids)
    z = stimulus_features(ds, models, "z", ids)
    c = stimulus_features(ds, models, "c", ids)
    scenes = ds.scenes(ids)
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
    low = ds.true_low_level_drive(ids)
    attributes = {"scene attributes": _attributes_one_hot(
                      scenes, ["place", "category", "color", "size", "position", "n_objects"]),
                  "without position and size": _attributes_one_hot(scenes, ["place", "category", "color",
                                                                             "n_objects"])}
    low_level = _fit_table(truth_data(low), {"z": z, "c": c, **attributes}, rois, ds, n_boot, seed)

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
    return EarlyCortexDiagnosis(noise_free=noise_free, low_level=low_level, by_training_size=curve,
                                n_components=k)
