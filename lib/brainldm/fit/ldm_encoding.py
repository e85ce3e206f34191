"""Encoding models of the latent diffusion model's parts, one call per analysis (Takagi & Nishimoto 2023, sec. 3.3).

Chapters 9 to 12 predict every voxel from a part of the LDM and compare the parts:

* :func:`fit_ldm_encoders` — the step they share: the subject's repeat-averaged responses
  (:func:`~brainldm.fit.encoding.encoding_data`), the named features of the training and test
  images (``z``, ``c``, ``z_c``, the joint ``z+c``, every denoising step's latent, every U-Net
  layer at every stage) and an encoding model of each (:func:`~brainldm.fit.encoding.fit_encoders`),
  gathered in an :class:`EncodingStudy`. The img2img run that makes ``z_c`` records the
  trajectory and every U-Net layer at once, so chapters 9, 11 and 12 share one cached run;
* :func:`latent_encoding` (chapter 9) — ``z``, ``c`` and ``z_c`` per ROI with bootstrap
  intervals, ``z − c`` per stream and early area, accuracy relative to the noise ceiling,
  and the variance ``z`` and ``c`` explain uniquely;
* :func:`noise_level_gains` (chapter 10) and :func:`timestep_gains` (chapter 11) — how much
  better (or worse) than ``z`` the latent predicts each ROI, per img2img strength or per
  denoising step (:class:`FeatureGains`);
* :func:`layer_scores` (chapter 12) — every U-Net layer at the early, middle and late stage.

Every voxel-wise test uses the one significance rule of :func:`brainldm.fit.encoding.significant`.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from brainldm.data.anatomy import STREAMS
from brainldm.errors import BrainLDMError, check_choice
from brainldm.features.stimulus import stimulus_features
from brainldm.features.unet import STAGES, LDMFeatures, layer_depths, ldm_features
from brainldm.fit.encoding import (EncodingData, best_feature, encoding_data, fit_encoders, roi_medians, roi_scores,
                                   variance_partition)
from brainldm.models.ldm import sampler_settings

__all__ = ["LDM_FEATURES", "stream_rois", "EncodingStudy", "encoding_study", "fit_ldm_encoders", "LatentEncoding",
           "latent_encoding", "FeatureGains", "noise_level_gains", "timestep_gains", "LayerScores", "layer_scores"]

#: the names :func:`fit_ldm_encoders` understands: the seen image's latent and captions' embedding,
#: the img2img latent, the banded joint model of ``z`` and ``c``, every step's latent, every layer and stage
LDM_FEATURES = ("z", "c", "z_c", "z+c", "steps", "layers")


def stream_rois(ds):
    """The NSD streams (:data:`brainldm.data.anatomy.STREAMS`) the dataset has, in their order."""
    return [name for name in STREAMS if name in ds.roi_names]


@dataclass
class EncodingStudy:
    """Encoding models of several features of one subject, fitted on the same responses.

    Attributes
    ----------
    ds : Dataset
        Gives the ROI masks.
    data : EncodingData
    results : dict of str to EncodingResult
        One model per feature, in the order they were asked for.
    ldm : LDMFeatures, optional
        The img2img run the LDM features came from.
    """

    ds: object
    data: EncodingData
    results: dict
    ldm: LDMFeatures = None

    @property
    def rois(self):
        """The streams of the dataset (:func:`stream_rois`)."""
        return stream_rois(self.ds)

    def describe(self):
        """One line: training and test images, voxels."""
        return (f"{len(self.data.train_ids)} training and {len(self.data.test_ids)} test images (repeats averaged), "
                f"{self.data.n_voxels} voxels")

    def summary(self):
        """Per model: its number of features, median test r and share of significant voxels."""
        return pd.DataFrame([{"model": name, "features": res.n_features, "median r": float(np.nanmedian(res.r)),
                              "significant voxels": float(res.significant.mean())}
                             for name, res in self.results.items()]).set_index("model")

    def scores(self, names=None, rois=None, metric="r", n_boot=1000, seed=0):
        """ROI means of each model's test score with bootstrap intervals (:func:`~brainldm.fit.encoding.roi_scores`)."""
        results = self.results if names is None else {name: self.results[name] for name in names}
        return roi_scores(self.data, results, self.rois if rois is None else list(rois), self.ds, metric=metric,
                          n_boot=n_boot, seed=seed)

    def r_maps(self, names, minus=None):
        """Test r of every voxel for each model, or its difference to model ``minus``."""
        base = 0.0 if minus is None else self.results[minus].r
        return {name: self.results[name].r - base for name in names}

    def predicted(self, names=None):
        """Voxels that at least one of the models (default: all) predicts significantly."""
        names = list(self.results) if names is None else list(names)
        return np.stack([self.results[name].significant for name in names]).any(0)


def encoding_study(ds, data, features, fdr=0.05, seed=0, ldm=None):
    """Fit an encoding model of every feature (cached) and gather them in an :class:`EncodingStudy`.

    Parameters
    ----------
    ds : Dataset
    data : EncodingData
    features : dict of str to array or list of arrays
        Values for ``data.ids`` (see :func:`~brainldm.fit.encoding.fit_encoders`).
    fdr : float
        False discovery rate of the voxel-wise tests.
    seed : int
    ldm : LDMFeatures, optional
        Recorded in the study.

    Returns
    -------
    study : EncodingStudy
    """
    return EncodingStudy(ds, data, fit_encoders(data, features, fdr=fdr, seed=seed), ldm)


def _ldm_run(ds, models, ids, settings, record):
    """The img2img run of ``settings``; with ``record``, every layer at every stage (the run chapters 9, 11 and 12
    share: one cache entry)."""
    return ldm_features(ds, models, ids, settings, layers="all" if record else None)


def fit_ldm_encoders(ds, models, features, settings=None, n_train=None, fdr=0.05, seed=0):
    """The named LDM features of the training and test images, and an encoding model of each.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    features : sequence of str
        Names from :data:`LDM_FEATURES`: ``"z"``, ``"c"`` (the seen image's latent, its captions'
        embedding), ``"z_c"`` (the img2img latent), ``"z+c"`` (a banded joint model of ``z`` and
        ``c``), ``"steps"`` (the latent after every denoising step: ``"step 1"`` ...) and
        ``"layers"`` (every U-Net layer at every stage: ``"<layer> <stage>"``, e.g. ``"mid early"``).
    settings : brainldm.models.ldm.SamplerSettings, optional
        The img2img run's settings (default ``sampler_settings(ds.name, "encoding")``); the run
        records every layer at every stage whatever is asked, so that every chapter reuses it.
    n_train : int, optional
        Training images (:func:`~brainldm.fit.encoding.encoding_data`).
    fdr : float
        False discovery rate of the voxel-wise tests.
    seed : int
        Seeds the cross-validation folds.

    Returns
    -------
    study : EncodingStudy
        ``ldm`` is the img2img run when an LDM feature was asked for.
    """
    features = list(features)
    for name in features:
        check_choice("LDM feature", name, LDM_FEATURES)
    data = encoding_data(ds, n_train=n_train)
    stimulus = {name: stimulus_features(ds, models, name, data.ids)
                for name in ("z", "c") if name in features or "z+c" in features}
    run = None
    if set(features) & {"z_c", "steps", "layers"}:
        run = _ldm_run(ds, models, data.ids, settings or sampler_settings(ds.name, "encoding"), record=True)
    arrays = {}
    for name in features:
        if name in ("z", "c"):
            arrays[name] = stimulus[name]
        elif name == "z+c":
            arrays[name] = [stimulus["z"], stimulus["c"]]
        elif name == "z_c":
            arrays[name] = run.z_c
        elif name == "steps":
            arrays.update({f"step {k + 1}": run.step(k) for k in range(run.n_steps)})
        else:
            arrays.update({f"{layer} {stage}": run.activation(layer, stage) for stage in STAGES
                           for layer in run.layers})
    return encoding_study(ds, data, arrays, fdr=fdr, seed=seed, ldm=run)


# --- chapter 9: z, c and z_c --------------------------------------------------------------
@dataclass
class LatentEncoding:
    """What :func:`latent_encoding` measured. Tables with intervals have ``mean``, ``ci_low``, ``ci_high``.

    Attributes
    ----------
    study : EncodingStudy
        Models ``z``, ``c``, ``z_c`` and ``z+c``.
    by_roi : pandas DataFrame
        Test r of ``z``, ``c`` and ``z_c`` per stream (``feature``, ``roi``).
    contrast : pandas DataFrame
        ``z − c`` per stream and per early area (V1–V3 where the dataset has them), with a
        ``verdict`` where the interval excludes 0.
    normalized : pandas DataFrame
        Median over each stream's voxels of r divided by the voxel's noise ceiling.
    unique : pandas DataFrame
        Test R² only ``z`` explains, only ``c`` explains, and both share, per stream.
    partition : dict of str to array of shape (n_voxels,)
        The same per voxel: ``unique z``, ``unique c``, ``shared``.
    """

    study: EncodingStudy
    by_roi: pd.DataFrame
    contrast: pd.DataFrame
    normalized: pd.DataFrame
    unique: pd.DataFrame
    partition: dict

    def means(self):
        """ROI means of r, one column per feature."""
        return self.by_roi.pivot(index="roi", columns="feature", values="mean").loc[self.study.rois,
                                                                                      ["z", "c", "z_c"]]

    def unique_means(self):
        """ROI means of the unique and shared R²: one column per part."""
        return self.unique.pivot(index="roi", columns="feature", values="mean").loc[
            self.study.rois, list(self.partition)]

    def map_similarity(self):
        """Correlation over voxels of ``z_c``'s map of r with ``z``'s and ``c``'s (the paper: ``z_c``'s is like ``z``'s)."""
        r = {name: self.study.results[name].r for name in ("z", "c", "z_c")}
        shared = np.all([np.isfinite(v) for v in r.values()], axis=0)
        return pd.Series({f"corr(r_{name}, r_z_c)": float(np.corrcoef(r[name][shared], r["z_c"][shared])[0, 1])
                          for name in ("z", "c")}, name="over voxels")

    def headline(self):
        """The numbers the chapter's summary quotes: ``z − c`` in early and ventral cortex (where the dataset
        has them) and :meth:`map_similarity`, named ``z_minus_c_<roi>``, ``zc_like_z`` and ``zc_like_c``."""
        contrast = self.contrast.drop_duplicates("roi").set_index("roi")["mean"]
        similarity = self.map_similarity()
        values = {f"z_minus_c_{roi}": float(contrast[roi]) for roi in ("early", "ventral") if roi in contrast}
        return pd.Series({**values, "zc_like_z": similarity.iloc[0], "zc_like_c": similarity.iloc[1]}, name="value")


def latent_encoding(ds, models, settings=None, n_train=None, fdr=0.05, n_boot=1000, seed=0):
    """Encoding models of ``z``, ``c``, ``z_c`` and of ``z`` and ``c`` together, summarised per ROI (chapter 9).

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    settings : brainldm.models.ldm.SamplerSettings, optional
        The img2img run that makes ``z_c`` (see :func:`fit_ldm_encoders`).
    n_train : int, optional
    fdr : float
    n_boot : int
        Bootstrap resamples of the test images (the same for every feature, so differences are paired).
    seed : int

    Returns
    -------
    encoding : LatentEncoding
    """
    study = fit_ldm_encoders(ds, models, ("z", "c", "z_c", "z+c"), settings, n_train=n_train, fdr=fdr, seed=seed)
    scores = study.scores(n_boot=n_boot, seed=seed)
    early = [name for name in STREAMS["early"] if name in ds.roi_names]
    contrast = [scores.contrast("z", "c")]
    if early:
        contrast.append(study.scores(("z", "c"), early, n_boot=n_boot, seed=seed).contrast("z", "c"))
    parts = variance_partition(study.results, "z", "c", "z+c")
    r2 = study.scores(metric="r2", n_boot=n_boot, seed=seed)
    unique = pd.concat([r2.combination(weights, label) for label, weights in parts.pop("weights").items()],
                       ignore_index=True)
    normalized = roi_medians(ds, {name: study.results[name].r_normalized for name in ("z", "c", "z_c")}, study.rois)
    return LatentEncoding(study, scores.table(["z", "c", "z_c"]), pd.concat(contrast, ignore_index=True),
                          normalized, unique, parts)


# --- chapters 10 and 11: a latent against z -------------------------------------------------
@dataclass
class FeatureGains:
    """How much better than ``z`` each of several latents predicts the voxels (chapters 10 and 11).

    Attributes
    ----------
    study : EncodingStudy
        Holds ``z`` and the compared models.
    names : list of str
        The compared models, in order.
    key : str
        What distinguishes them (``"strength"``, ``"step"``).
    labels : list
        Their values of ``key``.
    by_roi : pandas DataFrame
        ROI means of r(model) − r(``z``) with intervals and a ``verdict``; column ``key``.
    runs : pandas DataFrame
        The img2img run of each model: ``key``, ``steps`` and the ``first timestep``.
    """

    study: EncodingStudy
    names: list
    key: str
    labels: list
    by_roi: pd.DataFrame
    runs: pd.DataFrame

    def _pivot(self, values):
        return self.by_roi.pivot(index="roi", columns=self.key, values=values).loc[self.study.rois, self.labels]

    def means(self):
        """ROI means of the gain over ``z``: one row per ROI, one column per label."""
        return self._pivot("mean")

    def verdicts(self):
        """Where each interval excludes 0: one row per ROI, one column per label."""
        return self._pivot("verdict")

    def headline(self, rois=("early", "ventral")):
        """The numbers a chapter's summary quotes: the gain in each of ``rois`` (where the dataset has them) at
        the first and the last label, named ``<roi>_first`` and ``<roi>_last``."""
        means = self.means()
        return pd.Series({f"{roi}_{end}": float(means.loc[roi].iloc[k]) for roi in rois if roi in means.index
                          for end, k in (("first", 0), ("last", -1))}, name="r(model) − r(z)")

    @property
    def predicted(self):
        """Voxels that ``z`` or one of the compared models predicts significantly."""
        return self.study.predicted(["z"] + self.names)

    def gains(self, labels=None):
        """Each voxel's r(model) − r(``z``), titled ``"<key> <label>"`` (default: every label)."""
        labels = self.labels if labels is None else list(labels)
        maps = self.study.r_maps([self.names[self.labels.index(label)] for label in labels], minus="z")
        return {f"{self.key} {label}": gain for label, gain in zip(labels, maps.values())}

    def stage_gains(self):
        """The gains at the early, middle and late step of the run (``key`` ``"step"``), titled
        ``"<stage> (step k) − z"``."""
        if self.key != "step" or self.study.ldm is None:
            raise BrainLDMError("stage_gains needs the gains of every denoising step (timestep_gains)")
        gains = self.gains()
        return {f"{stage} (step {k + 1}) − z": gains[f"step {k + 1}"] for stage, k in self.study.ldm.stages.items()}

    def first_above(self, threshold=0.05):
        """The first label at which each voxel's gain exceeds ``threshold`` (predicted voxels only).

        Returns
        -------
        first : int array of shape (n_voxels,)
            Index into ``labels``; -1 where never, or where no model is significant.
        counts : pandas Series
            Voxels per first label, and ``"never"`` (predicted voxels whose gain never exceeds it).
        """
        above = np.stack(list(self.gains().values())) > threshold
        first = np.where(above.any(0) & self.predicted, above.argmax(0), -1)
        counts = {f"from {label}": int((first == k).sum()) for k, label in enumerate(self.labels)}
        counts["never"] = int(((first < 0) & self.predicted).sum())
        return first, pd.Series(counts, name="voxels")


def _gains(study, names, key, labels, runs, n_boot, seed):
    scores = study.scores(["z"] + list(names), n_boot=n_boot, seed=seed)
    by_roi = pd.concat([scores.contrast(name, "z").assign(**{key: label}) for name, label in zip(names, labels)],
                       ignore_index=True)
    return FeatureGains(study, list(names), key, list(labels), by_roi, pd.DataFrame(runs))


def noise_level_gains(ds, models, strengths, settings=None, n_train=None, fdr=0.05, n_boot=1000, seed=0):
    """``z_c`` at several img2img strengths against ``z``, per ROI and voxel (chapter 10).

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    strengths : sequence of float
        img2img strengths (noise levels); 1.0 ignores ``z``.
    settings : brainldm.models.ldm.SamplerSettings, optional
        The other img2img settings (default ``sampler_settings(ds.name, "encoding")``). The run at
        ``settings.strength`` is the one chapters 9, 11 and 12 share.
    n_train, fdr, n_boot, seed
        See :func:`latent_encoding`.

    Returns
    -------
    gains : FeatureGains
        Models ``"z_c <strength>"``, key ``"strength"``.
    """
    settings = settings or sampler_settings(ds.name, "encoding")
    if not len(strengths):
        raise BrainLDMError("strengths must list at least one img2img strength, e.g. [0.4, 0.8, 1.0]")
    data = encoding_data(ds, n_train=n_train)
    features, runs = {"z": stimulus_features(ds, models, "z", data.ids)}, []
    for strength in strengths:
        run = _ldm_run(ds, models, data.ids, settings.replace(strength=strength), record=strength == settings.strength)
        features[f"z_c {strength}"] = run.z_c
        runs.append({"strength": strength, "steps": run.n_steps, "first timestep": int(run.timesteps[0])})
    study = encoding_study(ds, data, features, fdr=fdr, seed=seed)
    return _gains(study, list(features)[1:], "strength", list(strengths), runs, n_boot, seed)


def timestep_gains(ds, models, settings=None, n_train=None, fdr=0.05, n_boot=1000, seed=0):
    """The latent after every denoising step of the img2img run against ``z`` (chapter 11).

    The parameters are :func:`latent_encoding`'s. The study also holds ``c`` and ``z_c`` (for the
    chapter's viewer).

    Returns
    -------
    gains : FeatureGains
        Models ``"step <k>"`` (1-based), key ``"step"``.
    """
    study = fit_ldm_encoders(ds, models, ("z", "c", "z_c", "steps"), settings, n_train=n_train, fdr=fdr, seed=seed)
    run = study.ldm
    steps = list(range(1, run.n_steps + 1))
    runs = [{"step": k, "timestep": int(t), "stage": ", ".join(s for s, i in run.stages.items() if i == k - 1)}
            for k, t in zip(steps, run.timesteps)]
    return _gains(study, [f"step {k}" for k in steps], "step", steps, runs, n_boot, seed)


# --- chapter 12: U-Net layers --------------------------------------------------------------
@dataclass
class LayerScores:
    """Every U-Net layer at every stage of denoising, per ROI and voxel (chapter 12).

    Attributes
    ----------
    study : EncodingStudy
        Models ``"<layer> <stage>"``.
    table : pandas DataFrame
        ROI means of test r with intervals: ``layer``, ``stage``, ``roi``, ``mean``, ``ci_low``, ``ci_high``.
    winners : dict of str to int array of shape (n_voxels,)
        Per stage, the index (into ``layers``) of the layer that predicts each voxel best; -1 where
        no layer of that stage is significant.
    """

    study: EncodingStudy
    table: pd.DataFrame
    winners: dict

    @property
    def layers(self):
        """The recorded layers, input to output."""
        return self.study.ldm.layers

    @property
    def depth(self):
        """How deep each layer sits (:func:`brainldm.features.unet.layer_depths`; the bottleneck is deepest)."""
        return layer_depths(self.layers)

    def describe(self):
        """Per layer: its pooled activation's shape and its depth."""
        run = self.study.ldm
        return pd.DataFrame({layer: {"pooled shape": run.layer_shapes[(layer, run.stages["late"])],
                                     "depth": self.depth[layer]} for layer in self.layers}).T

    def best_by_roi(self):
        """The layer with the highest ROI mean, per ROI and stage."""
        best = self.table.loc[self.table.groupby(["stage", "roi"], sort=False)["mean"].idxmax()]
        return best.pivot(index="roi", columns="stage", values="layer").loc[self.study.rois, list(STAGES)]

    def outer_and_bottleneck(self, rois=("early", "ventral")):
        """ROI means of the outermost layers and the bottleneck, per stage, in ``rois``."""
        depth = self.depth
        keep = [layer for layer in self.layers if depth[layer] in (0, max(depth.values()))]
        rows = self.table[self.table["layer"].isin(keep) & self.table["roi"].isin(list(rois))]
        return rows.pivot(index=["roi", "layer"], columns="stage", values="mean")[list(STAGES)]

    def headline(self):
        """The summary's numbers: the layer most often best over (ROI, stage), the share of those it is
        best in, and the share in which the bottleneck is best (``best_layer``, ``best_layer_share``,
        ``bottleneck_share``)."""
        best = self.best_by_roi().to_numpy().ravel()
        layer = pd.Series(best).value_counts().index[0]
        bottleneck = [name for name in self.layers if self.depth[name] == max(self.depth.values())]
        return pd.Series({"best_layer": layer, "best_layer_share": float((best == layer).mean()),
                          "bottleneck_share": float(np.isin(best, bottleneck).mean())}, dtype=object)

    def shares(self):
        """The share of voxels each layer wins at each stage."""
        return pd.DataFrame({stage: [(w == k).mean() for k in range(len(self.layers))]
                             for stage, w in self.winners.items()}, index=list(self.layers))

    def winner_depths(self):
        """Per stage and voxel: the depth of the winning layer, and whether it is outermost or the bottleneck
        (NaN where no layer wins), for :func:`brainldm.evaluate.truth.by_true_tuning`."""
        depth = np.array([self.depth[layer] for layer in self.layers], dtype=np.float64)
        out = {}
        for stage, w in self.winners.items():
            won = np.where(w >= 0, depth[np.clip(w, 0, None)], np.nan)
            out[f"{stage}: mean depth"] = won
            out[f"{stage}: outer layer"] = np.where(np.isfinite(won), won == 0, np.nan)
            out[f"{stage}: bottleneck"] = np.where(np.isfinite(won), won == depth.max(), np.nan)
        return out


def layer_scores(ds, models, settings=None, n_train=None, fdr=0.05, n_boot=1000, seed=0):
    """An encoding model of every U-Net layer at the early, middle and late stage of denoising (chapter 12).

    The parameters are :func:`latent_encoding`'s; the img2img run is the one chapters 9 and 11 share.

    Returns
    -------
    scores : LayerScores
    """
    study = fit_ldm_encoders(ds, models, ("layers",), settings, n_train=n_train, fdr=fdr, seed=seed)
    table = study.scores(n_boot=n_boot, seed=seed).table()
    table[["layer", "stage"]] = table["feature"].str.split(" ", expand=True)
    layers = study.ldm.layers
    winners = {stage: best_feature(study.results, [f"{layer} {stage}" for layer in layers])[0] for stage in STAGES}
    return LayerScores(study, table, winners)
