"""Metrics that compare reconstructions with the images that were seen.

Two-way identification (Takagi & Nishimoto 2023, seed 002 Table 1): for each
image, the fraction of the other images' reconstructions that correlate less
with it, in some network's feature space, than its own reconstruction does.
Chance is 0.5. The authors' rule averages the correlations over a reconstruction's
samples before counting strict wins; the original code loops over all pairs in Python,
here it is one matrix product.

:func:`evaluate_reconstructions` scores one subject's reconstructions with every Table 1 column
and the standard suite of later papers; :func:`evaluate_subjects` does it for several subjects
and returns a :class:`ReconstructionScores`, whose methods give the tables and bars the book
shows (identification per subject, means over subjects, each metric's best method).
"""

import dataclasses

import numpy as np
import pandas as pd
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

from brainldm.errors import ParameterError, check_choice
from brainldm.features.stimulus import resize_images

#: how identification counts wins (see :func:`identification_from_correlations`)
IDENTIFICATION_RULES = ("authors", "per_sample", "best_sample")

__all__ = ["two_way_identification", "identification_correlations", "identification_from_correlations",
           "IDENTIFICATION_RULES", "DISTANCE_COLUMNS", "correlation_distances", "missing_distances", "psnr",
           "pixcorr", "ssim", "shuffled", "bootstrap_ci", "match_size", "column_correlations",
           "identification_scores", "score_table", "evaluate_reconstructions", "ReconstructionScores",
           "evaluate_subjects", "IDENTIFICATION_COLUMNS", "SUITE_COLUMNS", "SUITE_METRICS",
           "RECONSTRUCTION_METHODS"]


def _standardise(x, axis=-1):
    x = np.asarray(x, np.float64)
    x = x - x.mean(axis=axis, keepdims=True)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def identification_correlations(orig, gen):
    """``r[k, i, j]``: Pearson correlation of seen image i's features and sample k of image j's reconstruction.

    Parameters
    ----------
    orig : array of shape (n, d)
    gen : array of shape (n, s, d) or (n, d)

    Returns
    -------
    r : float64 array of shape (s, n, n)
    """
    orig = np.asarray(orig)
    gen = np.asarray(gen)
    if gen.ndim == 2:
        gen = gen[:, None]
    if orig.ndim != 2 or gen.ndim != 3 or gen.shape[0] != orig.shape[0] or gen.shape[2] != orig.shape[1]:
        raise ParameterError(f"expected orig (n, d) and gen (n, s, d) with the same n and d, found "
                         f"{orig.shape} and {gen.shape}")
    if orig.shape[0] < 2:
        raise ParameterError(f"two-way identification needs at least 2 images, found {orig.shape[0]} (use n_images >= 2)")
    return np.einsum("id,jkd->kij", _standardise(orig), _standardise(gen))


def identification_from_correlations(r, rule="authors", among=None):
    """Two-way identification accuracy of each image from :func:`identification_correlations`.

    Parameters
    ----------
    r : array of shape (s, n, n)
    rule : {"authors", "per_sample"}
        ``"authors"`` (Takagi & Nishimoto's ``codes/utils/identification.py``, the loop after
        "Calculate accuracy"): average each (seen, reconstruction) correlation over the ``s``
        samples, then count the other images j with a strictly lower mean than image i's own.
        ``"per_sample"``: count, for every sample k separately, the j with
        ``r[k, i, i] > r[k, i, j]`` (ties one half), and average over the samples.
        ``"best_sample"``: the per-sample accuracy of each image's best sample (what picking
        one of the samples after the fact would report).
    among : bool array of shape (n, n), optional
        ``among[i, j]``: image j's reconstruction is one of image i's distractors (default every
        other image; ``i == j`` never is). An image with no distractors scores NaN.

    Returns
    -------
    accuracy : array of shape (n,)
        Chance is 0.5.
    """
    check_choice("identification rule", rule, IDENTIFICATION_RULES)
    n = r.shape[1]
    among = ~np.eye(n, dtype=bool) & (True if among is None else np.asarray(among, bool))
    with np.errstate(invalid="ignore", divide="ignore"):
        if rule == "authors":
            mean = r.mean(axis=0)
            own = np.diagonal(mean)[:, None]
            return ((own > mean) & among).sum(axis=1) / among.sum(axis=1)
        own = np.diagonal(r, axis1=1, axis2=2)[:, :, None]  # (s, n, 1): corr(orig_i, gen_ik)
        wins = ((own > r) + 0.5 * (own == r)) * among  # ties count one half
        wins = wins.sum(axis=2) / among.sum(axis=1)
    return wins.max(axis=0) if rule == "best_sample" else wins.mean(axis=0)


def two_way_identification(orig, gen, rule="authors"):
    """Two-way identification accuracy of each image.

    Parameters
    ----------
    orig : array of shape (n, d)
        Features of the images that were seen.
    gen : array of shape (n, s, d) or (n, d)
        Features of ``s`` reconstructions of each image.
    rule : {"authors", "per_sample"}
        See :func:`identification_from_correlations`; the authors' rule by default.

    Returns
    -------
    accuracy : array of shape (n,)
        Chance is 0.5.
    """
    return identification_from_correlations(identification_correlations(orig, gen), rule)


def psnr(images, reference, data_range=255.0):
    """Peak signal-to-noise ratio of each image, in dB.

    Parameters
    ----------
    images, reference : arrays of shape (n, ...)
    data_range : float
        255 for uint8 images.

    Returns
    -------
    psnr : array of shape (n,)
        Infinite where an image equals its reference.
    """
    a = np.asarray(images, np.float64)
    b = np.asarray(reference, np.float64)
    if a.shape != b.shape:
        raise ParameterError(f"images and reference must have the same shape, found {a.shape} and {b.shape}")
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


# --- the standard suite (Brain-Diffuser / MindEye) and confidence intervals ---------------

#: Table 1 of seed 002: two-way identification with early/middle/late layers, and Inception
IDENTIFICATION_COLUMNS = {
    "CLIP early": ("clip", "early"), "CLIP mid": ("clip", "middle"), "CLIP late": ("clip", "late"),
    "CNN early": ("cnn", "early"), "CNN mid": ("cnn", "middle"), "CNN late": ("cnn", "late"),
    "Inception": ("inception", "late"),
}
#: the suite Brain-Diffuser and MindEye report: low-level PixCorr, SSIM, AlexNet(2), AlexNet(5);
#: high-level Inception and CLIP (both two-way identification)
SUITE_COLUMNS = {"AlexNet(2)": ("cnn", "early"), "AlexNet(5)": ("cnn", "middle"),
                 "Inception": ("inception", "late"), "CLIP": ("clip", "embedding")}
#: the suite's two distances (lower is better): the correlation distance between the pooled features of
#: the seen image and of its reconstruction, where the model set has the network (NSD with its weights)
DISTANCE_COLUMNS = {"EffNet-B1": ("efficientnet", "pool"), "SwAV": ("swav", "pool")}
#: the standard suite's metrics in the order the papers print them
SUITE_METRICS = ("PixCorr", "SSIM", *SUITE_COLUMNS, *DISTANCE_COLUMNS)
#: what each score is at chance
CHANCE = {"identification": 0.5}


def _samples(gen):
    gen = np.asarray(gen)
    return gen[:, None] if gen.ndim == 4 else gen


def pixcorr(orig, gen):
    """Pixel correlation of each image with its reconstructions, averaged over samples.

    Parameters
    ----------
    orig : uint8 array of shape (n, H, W, 3)
    gen : uint8 array of shape (n, s, H, W, 3) or (n, H, W, 3)

    Returns
    -------
    r : array of shape (n,)
    """
    gen = _samples(gen)
    a = _standardise(np.asarray(orig, np.float64).reshape(len(orig), -1))
    b = _standardise(gen.reshape(gen.shape[0], gen.shape[1], -1))
    return np.einsum("id,isd->is", a, b).mean(1)


def ssim(orig, gen):
    """Structural similarity of greyscale images (Gaussian weights, sigma 1.5), averaged over samples.

    As Brain-Diffuser and MindEye compute it: ``skimage.metrics.structural_similarity``
    on luminance in [0, 1] with ``gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False``.

    Returns
    -------
    ssim : array of shape (n,)
    """
    gen = _samples(gen)
    grey = rgb2gray(np.asarray(orig))
    out = np.zeros(gen.shape[:2])
    for i in range(gen.shape[0]):
        for k in range(gen.shape[1]):
            out[i, k] = structural_similarity(grey[i], rgb2gray(gen[i, k]), gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=1.0)
    return out.mean(1)


def shuffled(gen, seed=0):
    """``gen`` with its images permuted (no image keeps its place): the chance pairing of a metric."""
    n = len(gen)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    while n > 1 and (order == np.arange(n)).any():
        order = rng.permutation(n)
    return np.asarray(gen)[order]


def bootstrap_ci(values, n_boot=2000, level=0.95, seed=0):
    """Mean of ``values`` (n,) with a percentile bootstrap confidence interval over the n items.

    Returns
    -------
    mean, low, high : float
    """
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(1)
    tail = (1 - level) / 2 * 100
    return float(values.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def match_size(orig, gen):
    """``gen`` at the seen images' size, as a uint8 array (n, s, H, W, 3).

    ``orig`` (n, H, W, 3) are the seen images, ``gen`` (n, s, h, w, 3) or (n, h, w, 3) their
    reconstructions, resized only where h × w differs from H × W: Brain-Diffuser and MindEye
    compare a reconstruction with the seen image at the seen image's size.
    """
    gen = _samples(gen)
    orig = np.asarray(orig)
    if gen.shape[2:4] == orig.shape[1:3]:
        return gen
    n, s = gen.shape[:2]
    return resize_images(gen.reshape((n * s,) + gen.shape[2:]), orig.shape[1]).reshape((n, s) + orig.shape[1:])


def column_correlations(models, orig, gen, columns=None, orig_features=None):
    """:func:`identification_correlations` in the feature space of each column.

    Each network runs once on the seen images and once on all samples, for every layer its
    columns name.

    Parameters
    ----------
    models : brainldm.models.loading.ModelSet
        Provides ``feature_nets``.
    orig : uint8 array of shape (n, H, W, 3)
    gen : uint8 array of shape (n, s, H, W, 3) or (n, H, W, 3)
    columns : dict of str to (net, layer), optional
        Default :data:`IDENTIFICATION_COLUMNS`.
    orig_features : dict, optional
        Features of ``orig`` per net and layer from an earlier call (filled in when given
        empty), so that several reconstructions of the same images share them.

    Returns
    -------
    correlations : dict of str to float64 array of shape (s, n, n)
        ``r[k, i, j]`` of each column; :func:`identification_from_correlations` turns it into
        accuracies, of all images or of any subset (``r[:, keep][:, :, keep]``).
    """
    columns = columns or IDENTIFICATION_COLUMNS
    orig_features = {} if orig_features is None else orig_features
    gen = _samples(gen)
    n, s = gen.shape[:2]
    flat_gen = gen.reshape((n * s,) + gen.shape[2:])
    out = {}
    for net_name in dict.fromkeys(net for net, _ in columns.values()):
        layers = list(dict.fromkeys(layer for net, layer in columns.values() if net == net_name))
        net = models.feature_nets[net_name]
        if net_name not in orig_features:
            orig_features[net_name] = net(orig, layers)
        f_gen = net(flat_gen, layers)
        for column, (name, layer) in columns.items():
            if name == net_name:
                out[column] = identification_correlations(orig_features[net_name][layer],
                                                          f_gen[layer].reshape(n, s, -1))
    return out


def identification_scores(models, orig, gen, columns=None, orig_features=None, rule="authors"):
    """Two-way identification of each image in the feature spaces of ``columns``.

    Parameters
    ----------
    models : brainldm.models.loading.ModelSet
        Provides ``feature_nets``.
    orig : uint8 array of shape (n, H, W, 3)
    gen : uint8 array of shape (n, s, H, W, 3)
    columns, orig_features
        See :func:`column_correlations`.
    rule : str
        See :func:`identification_from_correlations`.

    Returns
    -------
    scores : dict of str to array (n,)
    """
    correlations = column_correlations(models, orig, gen, columns, orig_features)
    return {column: identification_from_correlations(r, rule) for column, r in correlations.items()}


def correlation_distances(models, orig, gen, columns=None):
    """The suite's distances of each image: one minus the correlation of its features and each sample's, averaged.

    Parameters
    ----------
    models : ModelSet
    orig : uint8 array (n, H, W, 3)
    gen : uint8 array (n, s, H, W, 3)
    columns : dict, optional
        Default :data:`DISTANCE_COLUMNS`; columns whose network the model set lacks are left out
        (:func:`missing_distances` says which and why).

    Returns
    -------
    distances : dict of str to array (n,)
    """
    columns = DISTANCE_COLUMNS if columns is None else columns
    gen = _samples(gen)
    n, s = gen.shape[:2]
    out = {}
    for column, (net_name, layer) in columns.items():
        if net_name not in models.feature_nets:
            continue
        net = models.feature_nets[net_name]
        a = _standardise(net(orig, [layer])[layer])
        b = _standardise(net(gen.reshape((n * s,) + gen.shape[2:]), [layer])[layer]).reshape(n, s, -1)
        out[column] = 1.0 - np.einsum("id,isd->is", a, b).mean(axis=1)
    return out


def missing_distances(models, columns=None):
    """The distance columns the model set cannot compute, each with the reason: dict of str to str."""
    columns = DISTANCE_COLUMNS if columns is None else columns
    return {column: f"no {net_name!r} network in the {models.name} model set (on NSD: its weights are missing; "
                    "`brainldm check` says where they are looked for)"
            for column, (net_name, _) in columns.items() if net_name not in models.feature_nets}


def score_table(scores, chance=None, **groups):
    """Mean, 95% bootstrap CI and chance of per-image scores, one row per metric.

    Parameters
    ----------
    scores : dict of str to array (n,)
    chance : dict of str to float or array (n,), optional
        Chance level of each metric (per-image chance scores are averaged);
        identification metrics default to 0.5.
    **groups
        Constant columns added to every row (``subject="subj01"``, ``method="zc"``...).

    Returns
    -------
    table : pandas DataFrame
    """
    chance = chance or {}
    rows = []
    for metric, values in scores.items():
        mean, low, high = bootstrap_ci(values)
        not_identification = metric in ("PixCorr", "SSIM") or metric in DISTANCE_COLUMNS
        level = chance.get(metric, np.nan if not_identification else CHANCE["identification"])
        rows.append({**groups, "metric": metric, "mean": mean, "ci_low": low, "ci_high": high,
                     "chance": float(np.mean(level))})
    return pd.DataFrame(rows)


#: the reconstructions of :func:`brainldm.generate.reconstruction.reconstruct` and the names the papers give them
RECONSTRUCTION_METHODS = {"z-only": "X_z", "c-only": "X_c", "zc": "X_zc"}


def evaluate_reconstructions(models, orig, recon, methods=None, **groups):
    """Every Table 1 column and the standard suite, for each reconstruction method.

    Parameters
    ----------
    models : ModelSet
    orig : uint8 array of shape (n, H, W, 3)
        The test images that were seen (square).
    recon : dict
        ``X_z`` (n, h, w, 3), ``X_c`` and ``X_zc`` (n, s, h, w, 3); resized to H × W if needed.
    methods : dict of str to str, optional
        Method name -> key of ``recon`` (default :data:`RECONSTRUCTION_METHODS`).
    **groups
        Constant columns (``subject=...``).

    Returns
    -------
    table : pandas DataFrame
        One row per (method, metric) with mean, 95% CI and chance. PixCorr and SSIM
        chance levels pair each reconstruction with another image.
    """
    columns = {**IDENTIFICATION_COLUMNS, **SUITE_COLUMNS}
    orig_features = {}
    tables = []
    for method, key in (methods or RECONSTRUCTION_METHODS).items():
        gen = match_size(orig, recon[key])
        scores = {"PixCorr": pixcorr(orig, gen), "SSIM": ssim(orig, gen)}
        scores.update(identification_scores(models, orig, gen, columns, orig_features))
        distances = correlation_distances(models, orig, gen)
        scores.update(distances)
        chance = {"PixCorr": pixcorr(orig, shuffled(gen)), "SSIM": ssim(orig, shuffled(gen)),
                  **correlation_distances(models, orig, shuffled(gen), {k: DISTANCE_COLUMNS[k] for k in distances})}
        tables.append(score_table(scores, chance, method=method, **groups))
    return pd.concat(tables, ignore_index=True)


@dataclasses.dataclass(frozen=True)
class ReconstructionScores:
    """Every subject's scores of its reconstructions (what :func:`evaluate_subjects` returns).

    Attributes
    ----------
    table : pandas DataFrame
        One row per (method, subject, metric): ``mean`` over the test images, its 95% bootstrap
        CI (``ci_low``, ``ci_high``) and ``chance``, as :func:`evaluate_reconstructions` gives them.
    n_images : dict of str to int
        Test images scored per subject.
    n_samples : int
        Samples per image of the reconstructions that have several (the most of any method).
    """

    table: pd.DataFrame
    n_images: dict
    n_samples: int

    @property
    def subjects(self):
        """The subjects, in the order they were scored."""
        return list(self.n_images)

    @property
    def methods(self):
        """The methods, in the order they were scored."""
        return list(dict.fromkeys(self.table["method"]))

    def describe(self):
        """One line: how many images, samples and subjects were scored."""
        counts = sorted(set(self.n_images.values()))
        images = str(counts[0]) if len(counts) == 1 else ", ".join(f"{s}: {n}" for s, n in self.n_images.items())
        return (f"{images} test images, {self.n_samples} sample(s) each, {len(self.n_images)} subject(s) "
                f"({', '.join(self.subjects)})")

    def identification(self, columns=None):
        """Mean two-way identification of each (method, subject): one column per Table 1 column.

        Parameters
        ----------
        columns : iterable of str, optional
            Default :data:`IDENTIFICATION_COLUMNS`.

        Returns
        -------
        table : pandas DataFrame
            Index (method, subject), in the order they were scored.
        """
        columns = list(columns or IDENTIFICATION_COLUMNS)
        rows = self.table[self.table["metric"].isin(columns)]
        wide = rows.pivot_table(index=["method", "subject"], columns="metric", values="mean", sort=False)
        return wide[[c for c in columns if c in wide.columns]]

    def over_subjects(self, metrics=None):
        """Each (method, metric)'s mean, CI bounds and chance, averaged over subjects.

        Parameters
        ----------
        metrics : iterable of str, optional
            Default every metric scored; metrics that were not scored are left out.

        Returns
        -------
        table : pandas DataFrame
            Columns ``metric``, ``method``, ``mean``, ``ci_low``, ``ci_high``, ``chance``; rows by
            metric in the order of ``metrics``, then by method (what :func:`brainldm.figures.ci_bars`
            draws with ``x="metric", hue="method"``).
        """
        scored = list(dict.fromkeys(self.table["metric"]))
        metrics = [m for m in (metrics or scored) if m in scored]
        rows = self.table[self.table["metric"].isin(metrics)]
        mean = rows.groupby(["metric", "method"], sort=False)[["mean", "ci_low", "ci_high", "chance"]].mean()
        mean = mean.reindex(pd.MultiIndex.from_product([metrics, self.methods], names=["metric", "method"]))
        return mean.dropna(subset=["mean"]).reset_index()

    def winners(self, metrics=None):
        """Each metric's mean over subjects per method, and the method that does best.

        Best is the highest score, except for the distances (:data:`DISTANCE_COLUMNS`), where
        lower is better.

        Returns
        -------
        table : pandas DataFrame
            Index metric; one column per method and ``best``.
        """
        means = self.over_subjects(metrics).pivot(index="metric", columns="method", values="mean")
        order = list(dict.fromkeys(self.over_subjects(metrics)["metric"]))
        means = means.loc[order, [m for m in self.methods if m in means.columns]]
        best = [row.idxmin() if metric in DISTANCE_COLUMNS else row.idxmax() for metric, row in means.iterrows()]
        return means.assign(best=best).rename_axis(columns=None)


def evaluate_subjects(models, reconstructions, methods=None):
    """:func:`evaluate_reconstructions` of every subject.

    Parameters
    ----------
    models : ModelSet
    reconstructions : iterable of (str, uint8 array, dict)
        ``(subject, seen images (n, H, W, 3), reconstructions)`` of each subject, e.g. a
        :class:`brainldm.generate.reconstruction.SubjectReconstructions` (which reconstructs
        one subject at a time, so that only one subject's images are held at once).
    methods : dict of str to str, optional
        See :func:`evaluate_reconstructions`.

    Returns
    -------
    scores : ReconstructionScores
    """
    methods = methods or RECONSTRUCTION_METHODS
    tables, n_images, n_samples = [], {}, 1
    for subject, seen, recon in reconstructions:
        tables.append(evaluate_reconstructions(models, seen, recon, methods, subject=subject))
        n_images[subject] = len(seen)
        n_samples = max(n_samples, *(_samples(recon[key]).shape[1] for key in methods.values()))
    if not tables:
        raise ParameterError("evaluate_subjects got no subjects to score; give at least one")
    table = pd.concat(tables, ignore_index=True)
    columns = ["method", "subject"] + [c for c in table.columns if c not in ("method", "subject")]
    return ReconstructionScores(table[columns], n_images, n_samples)
