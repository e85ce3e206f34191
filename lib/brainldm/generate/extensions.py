"""The technical report's three extensions end to end, and its Table 1 (Takagi & Nishimoto 2023).

=============  ==========================================================================
method         img2img from ...
=============  ==========================================================================
``baseline``   ``X_z`` of the decoded ``z``, conditioned on the decoded ``c`` (CVPR 2023)
``+T``         ``X_z``, conditioned on a caption decoded from fMRI (:mod:`brainldm.features.captions`)
``+T+G``       the ``+G`` image (:mod:`brainldm.generate.structural`) instead of ``X_z``, and the caption
``+T+G+D``     the same, with a depth-conditioned U-Net given depth decoded from fMRI
               (:mod:`brainldm.features.depth`; SD 2 depth on NSD)
=============  ==========================================================================

The report decodes the captioner's, the CNN's and the depth estimator's features
from one ROI set (:data:`REPORT_ROIS`, the ``streams`` without ``midparietal``)
with the same ridge regression as ``z`` and ``c``; here they are fitted together
(one penalty per target, so this equals separate fits and shares the costly
decompositions). :class:`ExtensionRun` computes one subject's inputs and
reconstructions lazily, each cached on disk, so chapters 4 to 7 share them.
:func:`identification_table`, :func:`table1_summary` and :func:`paired_differences`
assemble Table 1 and each extension's change against the baseline with paired
bootstrap confidence intervals over test images.
"""

import inspect
from functools import cached_property

import numpy as np
import torch

from brainldm.data.cache import array_digest, cache_key, cached_arrays, cached_memmaps
from brainldm.features.captions import caption_model
from brainldm.fit.decoding import STREAM_ABOVE, decode, decode_tables, ridge_recipe
from brainldm.features.depth import CONDITIONING_CONVENTION, convert_depth, depth_generator, depth_model
from brainldm.errors import BrainLDMError, check_choice
from brainldm.evaluate.metrics import IDENTIFICATION_COLUMNS, bootstrap_ci, identification_scores
from brainldm.features.stimulus import resize_images
from brainldm.models.ldm import SamplerSettings, images_to_tensor, sampler_settings
from brainldm.fit.protocol import protocol_for
from brainldm.generate.reconstruction import brain_reconstructions, reconstruct
from brainldm.generate.structural import LAYERS, optimise_latents, pooled_layers, structure_loss

__all__ = ["REPORT_ROIS", "METHODS", "TARGETS", "SETTINGS", "settings_for", "extension_targets", "decode_extensions",
           "ExtensionRun", "identification_table", "table1_summary", "paired_differences", "compare_with_paper",
           "format_changes", "plot_changes"]
_VERSION = "2"  # 2: the captioner writes no positions (cached captions of version 1 do)

#: the ROIs the report decodes captions, GAN features and depth from (NSD ``streams``)
REPORT_ROIS = ("early", "ventral", "midventral", "midlateral", "lateral", "parietal")
#: Table 1's rows, in order
METHODS = ("baseline", "+T", "+T+G", "+T+G+D")
#: what the extensions decode (:func:`extension_targets`)
TARGETS = ("caption", "depth") + tuple(f"structure.{layer}" for layer in LAYERS)

#: Settings of the extensions per dataset (the reconstruction's strength, guidance and steps come
#: from :data:`brainldm.generate.reconstruction.SETTINGS`). NSD: every test image, single-trial fits, 5 samples
#: per image and a long optimisation, as in the report; world: the first 50 test images,
#: repeat-averaged fits, one sample per image and a short optimisation on a coarser grid, so that the
#: book builds on a CPU (chapters 4-7 together add about two and a half minutes). ``baseline_samples``:
#: samples of the baseline's cached reconstructions (None: chapter 2's default, so they are reused).
#: ``depth_grid``: decode the depth estimator's map on this grid (None: the world's latent grid; DPT's
#: hidden states on NSD, as in the report, about 2.4 million values per image).
SETTINGS = {
    "nsd": {"n_images": None, "roi": REPORT_ROIS, "train_on": "trials", "net": "cnn", "pool": 4,
            "layer_weights": {"early": 1.0, "middle": 1.0, "late": 1.0}, "iterations": 200, "lr": 0.05,
            "n_samples": 5, "baseline_samples": None, "depth_grid": None},
    "world": {"n_images": 50, "roi": REPORT_ROIS, "train_on": "averages", "net": "cnn", "pool": 4,
              "layer_weights": {"early": 1.0, "middle": 1.0, "late": 1.0}, "iterations": 3, "lr": 0.1,
              "n_samples": 1, "baseline_samples": None, "depth_grid": None},
}


def settings_for(dataset, **overrides):
    """:data:`SETTINGS` and the reconstruction settings of ``dataset``, with the ``overrides`` that are not None."""
    check_choice("dataset", dataset, SETTINGS)
    sampling = sampler_settings(dataset)
    base = {"strength": sampling.strength, "guidance_scale": sampling.guidance_scale,
            "num_inference_steps": sampling.num_inference_steps, **SETTINGS[dataset]}
    unknown = set(overrides) - set(base) - {"batch_size"}
    if unknown:
        raise BrainLDMError(f"unknown extension settings {sorted(unknown)}; valid: {sorted(base)}")
    return {**base, **{k: v for k, v in overrides.items() if v is not None}}


def _net_token(net, pool):
    """Identifies a feature net's weights by its pooled layers on a fixed probe image."""
    probe = torch.linspace(-1, 1, 2 * 3 * net.input_size ** 2).reshape(2, 3, net.input_size, net.input_size)
    with torch.no_grad():
        layers = pooled_layers(net, probe, LAYERS, pool)
    return array_digest(*[layers[k].cpu().numpy().round(4) for k in LAYERS])


def extension_targets(ds, models, ids, net="cnn", pool=4, depth_grid=None, batch_size=64):
    """What the extensions decode, one row per unique image of ``ids``: memory-mapped float32 tables (cached).

    ``caption``: the captioner's input features (BLIP's ViT on NSD); ``structure.<layer>``:
    the feature net's early, middle and late layers (spatial ones averaged to ``pool`` ×
    ``pool``); ``depth``: the depth model's representation (DPT's hidden states on NSD).
    The features are computed ``batch_size`` images at a time and written to one ``.npy``
    file per table (:func:`brainldm.data.cache.cached_memmaps`), so they never all sit in memory:
    on NSD they are about 11 MB per image.

    Returns
    -------
    tables : dict of str to numpy.memmap of shape (n_unique, d)
        :data:`TARGETS`, rows in sorted image id order.
    rows : int array of shape (len(ids),)
        The row of each of ``ids``: ``tables[name][rows]`` are the features of ``ids``.
    """
    ids = np.asarray(ids, dtype=np.int64)
    uniq, rows = np.unique(ids, return_inverse=True)
    captioner, depth = caption_model(models), depth_model(models, depth_grid)
    feature_net = models.feature_nets[check_choice("feature net", net, models.feature_nets)]

    def compute(folder):
        for start in range(0, len(uniq), batch_size):
            images = ds.images(uniq[start:start + batch_size])
            with torch.no_grad():
                layers = pooled_layers(feature_net, images_to_tensor(resize_images(images, feature_net.input_size)),
                                       LAYERS, pool)
            parts = {"caption": captioner.features(images), "depth": depth.representation(images),
                     **{f"structure.{layer}": layers[layer].cpu().numpy() for layer in LAYERS}}
            for name, values in parts.items():
                path = folder / f"{name}.npy"
                shape = (len(uniq), values.shape[1])
                table = (np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape) if start == 0
                         else np.load(path, mmap_mode="r+"))
                table[start:start + len(values)] = values
                table.flush()
                del table  # unmapped: the written pages leave this process' memory

    params = {"dataset": ds.name, "stimuli": ds.cache_token, "model": models.cache_token,
              "captioner": captioner.cache_token, "depth": depth.cache_token, "net": net,
              "net_weights": _net_token(feature_net, pool), "pool": pool,
              "ids": cache_key("ids", uniq.tolist(), "")}
    tables = cached_memmaps("extension_features", params, _VERSION, compute)
    return {name: tables[name] for name in TARGETS}, rows


def decode_extensions(ds, models, roi=REPORT_ROIS, net="cnn", pool=4, train_on="averages", depth_grid=None,
                      protocol=None, stream_above=STREAM_ABOVE, **ridge):
    """Decode every extension's features from ``roi``, with one ridge fit (cached).

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    roi : str or list of str
        Default the report's :data:`REPORT_ROIS`.
    net, pool, depth_grid
        See :func:`extension_targets`.
    train_on : {"trials", "averages"}
        Fit on single trials (the report) or on repeat-averaged responses (4 times cheaper
        on the world, where it decodes as well).
    protocol : brainldm.fit.protocol.Protocol or str, optional
        Its ridge recipe (:func:`brainldm.fit.decoding.ridge_recipe` with the authors' extension
        alphas 1e4, 2e4, 4e4); default the authors' on NSD, ours on the world.
    stream_above : int
        See :func:`brainldm.fit.decoding.fit_predict`: on NSD the predictions (11 GB) are
        streamed to disk, on the world they stay in memory.
    **ridge
        ``alphas``, ``n_folds``, ``random_state``: override the recipe's.

    Returns
    -------
    decoded : dict of str to brainldm.fit.decoding.Decoded
        One per :data:`TARGETS` (see :func:`brainldm.fit.decoding.decode_tables`).
    """
    roi = list(roi) if not isinstance(roi, str) else roi
    X, ids = ds.betas("train", roi=roi)
    X_test, test_ids = ds.betas("test", roi=roi, average=True)
    train = extension_targets(ds, models, ids, net, pool, depth_grid)
    test = extension_targets(ds, models, test_ids, net, pool, depth_grid)
    recipe = ridge_recipe(protocol_for(protocol, ds.name), "extensions", train_on=train_on, **ridge)
    return decode_tables(X, ids, X_test, test_ids, train, test, "extension_decoding", _VERSION, roi,
                         stream_above=stream_above, **recipe)


def _default_batch_size():
    # the baseline's batch size, so that sample k of image i gets the same noise in every method
    return inspect.signature(brain_reconstructions).parameters["batch_size"].default


class ExtensionRun:
    """One subject's ``+T``, ``+G`` and ``+D`` inputs and reconstructions, computed on first use and cached.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    n_images : int, optional
        Use the first ``n_images`` test images; 0 for all (default :data:`SETTINGS`: all on NSD, 50 on
        the world).
    seed : int
        Seeds the reconstructions' noise (the baseline's seed, so methods share noise).
    **settings
        Overrides of :func:`settings_for` (``n_samples``, ``iterations``, ``lr``...).

    Attributes
    ----------
    settings : dict
    ids : int array of shape (n,)
        The test images.
    """

    def __init__(self, ds, models, n_images=None, seed=0, **settings):
        self.ds, self.models, self.seed = ds, models, int(seed)
        self.settings = settings_for(ds.name, n_images=n_images, **settings)
        self.settings.setdefault("batch_size", _default_batch_size())
        n_images = self.settings["n_images"]
        self.keep = slice(int(n_images)) if n_images else slice(None)
        if self.settings["n_samples"] < 1:
            raise BrainLDMError(f"n_samples must be at least 1, got {self.settings['n_samples']}")

    # --- decoded inputs -----------------------------------------------------------------
    @cached_property
    def decoded(self):
        """Every extension's :class:`brainldm.fit.decoding.Decoded` (all test images)."""
        s = self.settings
        return decode_extensions(self.ds, self.models, s["roi"], s["net"], s["pool"], s["train_on"], s["depth_grid"])

    @cached_property
    def _baseline_decoded(self):
        return {"z": decode(self.ds, self.models, "z"), "c": decode(self.ds, self.models, "c")}

    @property
    def ids(self):
        return self._baseline_decoded["z"].ids[self.keep]

    @cached_property
    def z(self):
        """The decoded ``z`` of the baseline (from ``early``): tensor (n, channels, h, w)."""
        return torch.from_numpy(self._baseline_decoded["z"].unflatten(self.models)[self.keep])

    def features(self, name, which="predicted"):
        """Decoded (``which="predicted"``) or true features ``name`` of the images used: (n, d), in memory."""
        check_choice("which", which, ("predicted", "true"))
        return np.array(getattr(self.decoded[name], which)[self.keep])

    @cached_property
    def caption_model(self):
        return caption_model(self.models)

    def _captions(self, features):
        params = {"captioner": self.caption_model.cache_token, "features": array_digest(features)}
        arrays = cached_arrays("extension_captions", params, _VERSION,
                               lambda: {"captions": np.array(self.caption_model.generate(features), dtype=str)})
        return [str(text) for text in arrays["captions"]]

    @cached_property
    def captions(self):
        """Captions written from the captioner features decoded from fMRI (list of n str)."""
        return self._captions(self.features("caption"))

    @cached_property
    def seen_captions(self):
        """Captions the captioner writes from the seen images themselves (the ceiling of ``+T``)."""
        return self._captions(self.features("caption", "true"))

    def caption_c(self, generator=None):
        """``c`` of the decoded captions with ``generator``'s text encoder (default the model set's)."""
        generator = generator or self.models
        return generator.text_encoder.encode_captions([[text] for text in self.captions])

    @cached_property
    def structural(self):
        """The ``+G`` optimisation: dict with ``z`` (n, channels, h, w), ``loss`` (iterations + 1, n), ``seconds``."""
        s = self.settings
        net = self.models.feature_nets[s["net"]]
        targets = {layer: self.features(f"structure.{layer}") for layer in LAYERS}
        weights = {layer: float(w) for layer, w in s["layer_weights"].items()}
        params = {"model": self.models.cache_token, "net": s["net"], "pool": s["pool"],
                  "inputs": array_digest(self.z.numpy(), *targets.values()), "weights": weights,
                  "iterations": s["iterations"], "lr": s["lr"]}

        def compute():
            z, loss, seconds = optimise_latents(self.models.ldm, net, self.z, targets, weights, s["pool"],
                                                s["iterations"], s["lr"])
            return {"z": z.numpy(), "loss": loss, "seconds": np.float64(seconds)}

        arrays = cached_arrays("extension_structural", params, _VERSION, compute)
        return {"z": torch.from_numpy(arrays["z"]), "loss": arrays["loss"], "seconds": float(arrays["seconds"])}

    def structure_losses(self):
        """The ``+G`` loss per image (n,) of ``X_z`` (the start), ``X_g`` (the end) and of the seen image.

        The seen image's loss compares its own features with the decoded ones: an
        optimisation that goes below it is fitting the decoding errors.
        """
        weights = {layer: float(w) for layer, w in self.settings["layer_weights"].items()}
        seen = {layer: torch.from_numpy(self.features(f"structure.{layer}", "true")) for layer in LAYERS}
        targets = {layer: torch.from_numpy(self.features(f"structure.{layer}")) for layer in LAYERS}
        loss = self.structural["loss"]
        return {"X_z": loss[0], "X_g": loss[-1], "seen image": structure_loss(seen, targets, weights).numpy()}

    @cached_property
    def depth_model(self):
        return depth_model(self.models, self.settings["depth_grid"])

    def _depth_maps(self, which, batch_size=16):
        """:attr:`depth_model`'s maps of the ``which`` depth representation, ``batch_size`` images at a time
        (DPT's hidden states are 9.5 MB per image)."""
        representation = getattr(self.decoded["depth"], which)[self.keep]
        return np.concatenate([self.depth_model.depth_from(np.array(representation[start:start + batch_size]))
                               for start in range(0, max(len(representation), 1), batch_size)])

    @cached_property
    def depth(self):
        """Depth maps decoded from fMRI, in :attr:`depth_model`'s convention: (n, h, w)."""
        return self._depth_maps("predicted")

    @cached_property
    def seen_depth(self):
        """Depth maps of the seen images' representation (the estimator's own maps): (n, h, w)."""
        return self._depth_maps("true")

    def images(self, which):
        """``X_z`` (decoded ``z``) or ``X_g`` (``+G``) images: uint8 (n, H, W, 3)."""
        check_choice("image", which, ("X_z", "X_g"))
        return self.models.ldm.decode(self.z if which == "X_z" else self.structural["z"])

    # --- reconstructions ----------------------------------------------------------------
    def baseline(self):
        """The baseline's ``X_zc``, its first ``n_samples`` samples: uint8 (n, s, H, W, 3).

        Reuses chapter 2's cached reconstructions: the same strength, guidance and steps as
        the extensions, and ``baseline_samples`` samples (chapter 2's default unless set).
        """
        s = self.settings
        base = sampler_settings(self.ds.name, n_samples=s["baseline_samples"], seed=self.seed,
                                **{k: s[k] for k in ("strength", "guidance_scale", "num_inference_steps")})
        if base.n_samples < s["n_samples"]:
            raise BrainLDMError(f"the baseline has {base.n_samples} samples per image but the extensions draw "
                                f"{s['n_samples']}; set baseline_samples to at least n_samples")
        _, recon, _ = brain_reconstructions(self.ds, self.models, base)
        return recon["X_zc"][self.keep, :s["n_samples"]]

    def reconstruct(self, method):
        """``X_zc`` of one of :data:`METHODS`: uint8 (n, s, H, W, 3), cached."""
        check_choice("method", method, METHODS)
        if method == "baseline":
            return self.baseline()
        s = self.settings
        generator, depth = self.models, None
        z = self.z if method == "+T" else self.structural["z"]
        if method == "+T+G+D":
            generator = depth_generator(self.models)
            depth = convert_depth(self.depth, self.depth_model.convention, CONDITIONING_CONVENTION[generator.name])
            if generator is not self.models:  # a different VAE: re-encode the +G image at its resolution
                z = generator.ldm.encode(resize_images(self.models.ldm.decode(z), generator.resolution))
        c = self.caption_c(generator)
        options = {k: s[k] for k in ("strength", "guidance_scale", "num_inference_steps", "n_samples", "batch_size")}
        params = {"model": generator.cache_token, "method": method, "seed": self.seed, **options,
                  "inputs": array_digest(z.numpy(), c.numpy(), *([] if depth is None else [depth]))}
        sampling = SamplerSettings(seed=self.seed, **options)
        arrays = cached_arrays("extension_reconstructions", params, _VERSION, lambda: dict(reconstruct(
            generator.ldm, z, c, generator.uncond, sampling, depth=depth, which=("X_zc",))))
        return arrays["X_zc"]


# --- Table 1 ------------------------------------------------------------------------------

def identification_table(models, orig, recons, **groups):
    """Two-way identification of every image, for every method and Table 1 column.

    Parameters
    ----------
    models : ModelSet
    orig : uint8 array of shape (n, H, W, 3)
        The seen images.
    recons : dict of str to uint8 array of shape (n, s, h, w, 3)
        Reconstructions of each method.
    **groups
        Constant columns (``subject="subj01"``).

    Returns
    -------
    table : pandas DataFrame
        Columns ``**groups``, ``method``, ``metric`` (:data:`brainldm.evaluate.metrics.IDENTIFICATION_COLUMNS`),
        ``image`` (position in ``orig``) and ``score``.
    """
    import pandas as pd

    orig_features, rows = {}, []
    for method, gen in recons.items():
        scores = identification_scores(models, orig, gen, IDENTIFICATION_COLUMNS, orig_features)
        for metric, values in scores.items():
            rows.append(pd.DataFrame({**groups, "method": method, "metric": metric, "image": np.arange(len(values)),
                                      "score": values}))
    return pd.concat(rows, ignore_index=True)


def table1_summary(table):
    """Table 1: mean identification per subject and method, then the mean ± s.d. over subjects.

    Parameters
    ----------
    table : pandas DataFrame
        :func:`identification_table` rows of one or more subjects (column ``subject``).

    Returns
    -------
    per_subject : pandas DataFrame
        Index (subject, method), one column per metric.
    across : pandas DataFrame
        Index method; columns (metric, "mean") and (metric, "sd") over subjects (ddof=1).
    """
    columns = list(IDENTIFICATION_COLUMNS)
    per_subject = table.pivot_table(index=["subject", "method"], columns="metric", values="score", sort=False)
    per_subject = per_subject[[c for c in columns if c in per_subject.columns]]
    grouped = per_subject.groupby(level="method", sort=False)
    across = grouped.mean().T.stack().rename("mean").to_frame()
    across["sd"] = grouped.std(ddof=1).T.stack()
    across = across.unstack(0).swaplevel(0, 1, axis=1)
    across = across[[(c, stat) for c in per_subject.columns for stat in ("mean", "sd")]]
    return per_subject, across.loc[list(dict.fromkeys(per_subject.index.get_level_values("method")))]


def paired_differences(table, baseline="baseline", n_boot=2000, level=0.95, seed=0):
    """Each method's change against ``baseline`` per metric, with paired bootstrap CIs over images.

    For each subject the per-image difference (method − baseline, same image) is
    bootstrapped over images; for the mean over subjects the per-image differences are
    first averaged over subjects (the test images are shared) and then bootstrapped.

    Returns
    -------
    differences : pandas DataFrame
        Columns ``subject`` ("mean" for the mean over subjects), ``method``, ``metric``,
        ``baseline`` and ``value`` (mean scores), ``change``, ``ci_low``, ``ci_high`` and
        ``excludes_zero`` (the CI lies on one side of 0).
    """
    import pandas as pd

    wide = table.pivot_table(index=["metric", "image"], columns=["method", "subject"], values="score")
    if baseline not in wide.columns.get_level_values("method"):
        raise BrainLDMError(f"no {baseline!r} rows to compare against; methods are "
                            f"{sorted(set(table['method']))}")
    subjects = list(dict.fromkeys(table["subject"]))
    methods = [m for m in dict.fromkeys(table["method"]) if m != baseline]
    rows = []
    for metric in dict.fromkeys(table["metric"]):
        block = wide.loc[metric]
        for method in methods:
            diffs = {name: (block[(method, name)] - block[(baseline, name)]).to_numpy() for name in subjects}
            base = {name: block[(baseline, name)].to_numpy() for name in subjects}
            if len(subjects) > 1:
                diffs["mean"] = np.mean([diffs[name] for name in subjects], axis=0)
                base["mean"] = np.mean([base[name] for name in subjects], axis=0)
            for name, diff in diffs.items():
                if np.isnan(diff).any():
                    raise BrainLDMError(f"{method} and {baseline} were not scored on the same images for {name}")
                change, low, high = bootstrap_ci(diff, n_boot, level, seed)
                rows.append({"subject": name, "method": method, "metric": metric, "baseline": base[name].mean(),
                             "value": base[name].mean() + change, "change": change, "ci_low": low, "ci_high": high,
                             "excludes_zero": bool(low > 0 or high < 0)})
    return pd.DataFrame(rows)


def compare_with_paper(across):
    """This run's mean over subjects beside seed 002's Table 1 and the difference.

    Parameters
    ----------
    across : pandas DataFrame
        The second result of :func:`table1_summary`.

    Returns
    -------
    comparison : pandas DataFrame
        Index (method, source) with source ``paper``, ``this run``, ``difference``; one column per metric.
    """
    import pandas as pd

    from brainldm.figures.reference import table1

    paper = table1().rename(index={"CVPR baseline": "baseline"})
    ours = across.xs("mean", axis=1, level=1)
    rows = {}
    for method in ours.index:
        if method in paper.index:
            rows[(method, "paper")] = paper.loc[method, ours.columns]
            rows[(method, "this run")] = ours.loc[method]
            rows[(method, "difference")] = ours.loc[method] - paper.loc[method, ours.columns]
    return pd.DataFrame(rows).T.rename_axis(["method", "source"])


def format_changes(differences, subject="mean", digits=3):
    """Changes and CIs of :func:`paired_differences` as text, one row per method, one column per metric.

    Cells read ``+0.052 [+0.031, +0.074]``; a ``*`` marks a CI that excludes 0.
    """
    rows = differences[differences["subject"] == subject]
    text = rows.apply(lambda r: f"{r['change']:+.{digits}f} [{r['ci_low']:+.{digits}f}, {r['ci_high']:+.{digits}f}]"
                      + ("*" if r["excludes_zero"] else " "), axis=1)
    table = rows.assign(text=text).pivot(index="method", columns="metric", values="text")
    return table.loc[list(dict.fromkeys(rows["method"])), list(dict.fromkeys(rows["metric"]))]


def plot_changes(differences, subject="mean", title=None):
    """Bars of each method's change against the baseline per metric, with its CI.

    Returns
    -------
    fig : matplotlib Figure
    """
    import matplotlib.pyplot as plt

    rows = differences[differences["subject"] == subject]
    metrics = list(dict.fromkeys(rows["metric"]))
    methods = list(dict.fromkeys(rows["method"]))
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(metrics)), 3.2))
    for k, method in enumerate(methods):
        sub = rows[rows["method"] == method].set_index("metric").reindex(metrics)
        x = np.arange(len(metrics)) + (k - (len(methods) - 1) / 2) * width
        ax.bar(x, sub["change"], width, yerr=[sub["change"] - sub["ci_low"], sub["ci_high"] - sub["change"]],
               capsize=2, label=method)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(metrics)), metrics, rotation=20, ha="right")
    ax.set_ylabel("change in identification")
    ax.set_title(title or f"change against the baseline ({subject}); bars: 95% paired bootstrap CI", fontsize=9)
    ax.legend(fontsize=8, ncol=len(methods))
    fig.tight_layout()
    return fig
