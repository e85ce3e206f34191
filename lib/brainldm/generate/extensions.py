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
decompositions). What a run does is one :class:`ExtensionSettings` (per-dataset defaults in
:data:`EXTENSION_DEFAULTS`, :func:`extension_settings`). :class:`ExtensionRun` computes one
subject's inputs and reconstructions lazily, each cached on disk, so chapters 4 to 7 share
them; :meth:`ExtensionRun.compare` scores methods with Table 1's two-way identification and
their changes with paired bootstrap CIs (:class:`MethodComparison`), and
:func:`table1_summary` assembles Table 1 over subjects.
"""

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import torch

from brainldm.data.cache import array_digest, cache_key, cached_arrays, cached_memmaps
from brainldm.errors import BrainLDMError, ParameterError, Rule, check_choice
from brainldm.evaluate.metrics import IDENTIFICATION_COLUMNS, evaluate_reconstructions, identification_scores, \
    score_table
from brainldm.evaluate.decoded import attribute_table, caption_scores, depth_scores
from brainldm.evaluate.paired import format_changes, paired_differences, summarise_changes
from brainldm.features.captions import caption_model
from brainldm.features.depth import CONDITIONING_CONVENTION, convert_depth, depth_generator, depth_model, true_depth
from brainldm.features.layers import feature_net_token, pooled_layers
from brainldm.features.stimulus import resize_images
from brainldm.fit.decoding import STREAM_ABOVE, TableSplit, decode, decode_tables, ridge_recipe
from brainldm.fit.protocol import protocol_for
from brainldm.generate.optimise import CheckedSettings, feature_loss
from brainldm.generate.reconstruction import brain_reconstructions, reconstruct
from brainldm.generate.structural import CNN_LAYERS, optimise_latents
from brainldm.models.ldm import SamplerSettings, images_to_tensor, sampler_settings
from brainldm.models.world.nets import scene_attributes

__all__ = ["REPORT_ROIS", "METHODS", "TARGETS", "ExtensionSettings", "EXTENSION_DEFAULTS", "extension_settings",
           "extension_targets", "decode_extensions", "decoding_summary", "ExtensionRun", "MethodComparison",
           "identification_table", "table1_summary"]
_VERSION = "3"  # 2: the captioner writes no positions; 3: ExtensionSettings (the sampler's every field keys)

#: the ROIs the report decodes captions, GAN features and depth from (NSD ``streams``)
REPORT_ROIS = ("early", "ventral", "midventral", "midlateral", "lateral", "parietal")
#: Table 1's rows, in order
METHODS = ("baseline", "+T", "+T+G", "+T+G+D")
#: what the extensions decode (:func:`extension_targets`)
TARGETS = ("caption", "depth") + tuple(f"structure.{layer}" for layer in CNN_LAYERS)


@dataclass(frozen=True)
class ExtensionSettings(CheckedSettings):
    """What the extensions decode and how they reconstruct: one frozen value, checked when made.

    The defaults are the report's, on NSD; :data:`EXTENSION_DEFAULTS` has those of each dataset.

    Attributes
    ----------
    n_images : int >= 0, optional
        Use the first ``n_images`` test images; None or 0: all.
    roi : tuple of str
        Where the captioner's, the CNN's and the depth model's features are decoded from
        (default :data:`REPORT_ROIS`).
    train_on : {"trials", "averages"}
        Fit on single trials (the report) or on repeat-averaged responses (4 times cheaper on the
        world, where it decodes as well).
    net : str
        The feature net whose layers ``+G`` decodes and matches (``"cnn"``: AlexNet on NSD).
    pool : int >= 1
        Spatial layers are decoded on a ``pool`` × ``pool`` grid.
    layer_weights : dict of str to float
        Weight of each of :data:`~brainldm.generate.structural.CNN_LAYERS` in ``+G``'s loss.
    iterations : int >= 0
        ``+G``'s Adam steps (Shen et al.: 200).
    lr : float > 0
        ``+G``'s learning rate.
    baseline_samples : int >= 1, optional
        Samples per image of the baseline's cached reconstructions (None: chapter 2's default,
        so that they are reused); at least ``sampler.n_samples``.
    depth_grid : int >= 1, optional
        Decode the depth estimator's map on this grid (None: the world's latent grid; DPT's hidden
        states on NSD, as in the report, about 2.4 million values per image).
    sampler : brainldm.models.ldm.SamplerSettings
        How every method samples (the baseline's strength, guidance and steps; ``seed`` gives
        every method the same noise for the same sample).
    """

    n_images: int = None
    roi: tuple = REPORT_ROIS
    train_on: str = "trials"
    net: str = "cnn"
    pool: int = 4
    layer_weights: dict = field(default_factory=lambda: {layer: 1.0 for layer in CNN_LAYERS})
    iterations: int = 200
    lr: float = 0.05
    baseline_samples: int = None
    depth_grid: int = None
    sampler: SamplerSettings = SamplerSettings()

    KIND = "extension"
    RULES = {"n_images": Rule("int", low=0, none=True), "roi": Rule("str", many=True),
             "train_on": Rule("str", choices=("trials", "averages")), "net": Rule("str"), "pool": Rule("int", low=1),
             "layer_weights": Rule("dict"), "iterations": Rule("int", low=0),
             "lr": Rule("float", low=0, low_open=True), "baseline_samples": Rule("int", low=1, none=True),
             "depth_grid": Rule("int", low=1, none=True)}

    def _check(self):
        for layer, weight in self.layer_weights.items():
            check_choice("layer in extension['layer_weights']", layer, CNN_LAYERS)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
                raise ParameterError(f"extension['layer_weights'][{layer!r}] = {weight!r}: expected a number >= 0")
        if not any(self.layer_weights.values()):
            raise ParameterError(f"extension['layer_weights'] = {self.layer_weights}: give one layer a weight above 0")
        if not isinstance(self.sampler, SamplerSettings):
            raise ParameterError(f"extension sampler must be a SamplerSettings, found {self.sampler!r}")
        if self.baseline_samples is not None and self.baseline_samples < self.sampler.n_samples:
            raise ParameterError(f"extension['baseline_samples'] = {self.baseline_samples} but the extensions draw "
                                 f"{self.sampler.n_samples} samples per image: the baseline needs at least as many")

    def replace(self, **overrides):
        """A copy with the overrides that are not None; ``sampler`` may be a dict of overrides of the sampler's."""
        if isinstance(overrides.get("sampler"), dict):
            overrides["sampler"] = self.sampler.replace(**overrides["sampler"])
        return super().replace(**overrides)

    @property
    def keep(self):
        """The test images used: a slice of the test split."""
        return slice(int(self.n_images)) if self.n_images else slice(None)


#: The extensions' settings per dataset. NSD: the report's (every test image, single-trial fits, 5
#: samples per image, a long optimisation; Takagi & Nishimoto's sampler). The world: the first 50
#: test images, repeat-averaged fits, one sample per image and a short optimisation, so that the
#: book builds on a CPU (chapters 4-7 together add about two and a half minutes).
EXTENSION_DEFAULTS = {
    "nsd": ExtensionSettings(sampler=sampler_settings("nsd")),
    "world": ExtensionSettings(n_images=50, train_on="averages", iterations=3, lr=0.1,
                               sampler=sampler_settings("world", n_samples=1)),
}


def extension_settings(dataset, sampler=None, seed=None, **overrides):
    """The :data:`EXTENSION_DEFAULTS` of ``dataset`` with the overrides that are not None.

    Parameters
    ----------
    dataset : {"world", "nsd"}
    sampler : dict, optional
        Overrides of the sampler's settings (a chapter's ``sampler`` parameter).
    seed : int, optional
        The sampler's seed (a chapter's ``seed`` parameter).
    **overrides
        Fields of :class:`ExtensionSettings` (a chapter's ``extension`` parameter).

    Examples
    --------
    >>> extension_settings("world", {"num_inference_steps": 4}, iterations=2).sampler.num_inference_steps
    4
    """
    if dataset not in EXTENSION_DEFAULTS:
        raise ParameterError(f"unknown dataset {dataset!r}; valid: {sorted(EXTENSION_DEFAULTS)}")
    return EXTENSION_DEFAULTS[dataset].replace(sampler={**(sampler or {}), "seed": seed}, **overrides)


def extension_targets(ds, models, ids, settings=None, batch_size=64):
    """What the extensions decode, one row per unique image of ``ids``: memory-mapped float32 tables (cached).

    ``caption``: the captioner's input features (BLIP's ViT on NSD); ``structure.<layer>``:
    the feature net's early, middle and late layers (spatial ones averaged to ``pool`` ×
    ``pool``); ``depth``: the depth model's representation (DPT's hidden states on NSD).
    The features are computed ``batch_size`` images at a time and written to one ``.npy``
    file per table (:func:`brainldm.data.cache.cached_memmaps`), so they never all sit in memory:
    on NSD they are about 11 MB per image.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    ids : int array
    settings : ExtensionSettings, optional
        Its ``net``, ``pool`` and ``depth_grid`` (default the report's).
    batch_size : int

    Returns
    -------
    tables : dict of str to numpy.memmap of shape (n_unique, d)
        :data:`TARGETS`, rows in sorted image id order.
    rows : int array of shape (len(ids),)
        The row of each of ``ids``: ``tables[name][rows]`` are the features of ``ids``.
    """
    settings = settings or ExtensionSettings()
    ids = np.asarray(ids, dtype=np.int64)
    uniq, rows = np.unique(ids, return_inverse=True)
    captioner, depth = caption_model(models), depth_model(models, settings.depth_grid)
    feature_net = models.feature_nets[check_choice("feature net", settings.net, models.feature_nets)]

    def compute(folder):
        for start in range(0, len(uniq), batch_size):
            images = ds.images(uniq[start:start + batch_size])
            with torch.no_grad():
                layers = pooled_layers(feature_net, images_to_tensor(resize_images(images, feature_net.input_size)),
                                       CNN_LAYERS, settings.pool)
            parts = {"caption": captioner.features(images), "depth": depth.representation(images),
                     **{f"structure.{layer}": layers[layer].cpu().numpy() for layer in CNN_LAYERS}}
            for name, values in parts.items():
                path = folder / f"{name}.npy"
                shape = (len(uniq), values.shape[1])
                table = (np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape) if start == 0
                         else np.load(path, mmap_mode="r+"))
                table[start:start + len(values)] = values
                table.flush()
                del table  # unmapped: the written pages leave this process' memory

    params = {"dataset": ds.name, "stimuli": ds.cache_token, "model": models.cache_token,
              "captioner": captioner.cache_token, "depth": depth.cache_token, "net": settings.net,
              "net_weights": feature_net_token(feature_net), "pool": settings.pool,
              "ids": cache_key("ids", uniq.tolist(), "")}
    tables = cached_memmaps("extension_features", params, _VERSION, compute)
    return {name: tables[name] for name in TARGETS}, rows


def decode_extensions(ds, models, settings=None, protocol=None, ridge=None, stream_above=STREAM_ABOVE):
    """Decode every extension's features from ``settings.roi``, with one ridge fit (cached).

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    settings : ExtensionSettings, optional
        Its ``roi``, ``train_on``, ``net``, ``pool`` and ``depth_grid`` (default the report's).
    protocol : brainldm.fit.protocol.Protocol or str, optional
        Its ridge recipe (:func:`brainldm.fit.decoding.ridge_recipe` with the authors' extension
        alphas 1e4, 2e4, 4e4); default the authors' on NSD, ours on the world.
    ridge : dict, optional
        Overrides of the recipe's fields (``alphas``, ``n_folds``, ``random_state``...).
    stream_above : int
        See :func:`brainldm.fit.decoding.fit_predict`: on NSD the predictions (11 GB) are
        streamed to disk, on the world they stay in memory.

    Returns
    -------
    decoded : dict of str to brainldm.fit.decoding.Decoded
        One per :data:`TARGETS` (see :func:`brainldm.fit.decoding.decode_tables`).
    """
    settings = settings or ExtensionSettings()
    roi = list(settings.roi)
    X, ids = ds.betas("train", roi=roi)
    X_test, test_ids = ds.betas("test", roi=roi, average=True)
    train = TableSplit(X, ids, *extension_targets(ds, models, ids, settings))
    test = TableSplit(X_test, test_ids, *extension_targets(ds, models, test_ids, settings))
    recipe = ridge_recipe(protocol_for(protocol, ds.name), "extensions", train_on=settings.train_on, **(ridge or {}))
    return decode_tables(train, test, "extension_decoding", _VERSION, roi, recipe, stream_above)


def decoding_summary(decoded):
    """How well each decoder predicts its features on the test images.

    Parameters
    ----------
    decoded : dict of str to brainldm.fit.decoding.Decoded

    Returns
    -------
    table : pandas DataFrame
        One row per decoder: ``feature`` (the key), ``dimensions``, ``voxels``, ``mean r`` (over
        the dimensions that vary) and ``r > 0`` (the fraction of dimensions above 0).
    """
    return pd.DataFrame([{"feature": name, "dimensions": d.r.size, "voxels": d.n_voxels, "mean r": d.mean_r(),
                          "r > 0": float(np.mean(d.r > 0))} for name, d in decoded.items()])


@dataclass(frozen=True)
class MethodComparison:
    """Methods scored on the same test images with Table 1's two-way identification (what
    :meth:`ExtensionRun.compare` returns).

    Attributes
    ----------
    subject : str
    methods : tuple of str
        The first is the reference of :attr:`changes`.
    table : pandas DataFrame
        :func:`identification_table`: one row per (method, metric, image).
    changes : pandas DataFrame
        :func:`brainldm.evaluate.paired.paired_differences` of every method against the first.
    """

    subject: str
    methods: tuple
    table: pd.DataFrame
    changes: pd.DataFrame

    def against(self, reference):
        """The changes of the methods after ``reference`` (in :attr:`methods`) against it."""
        later = self.methods[self.methods.index(check_choice("reference method", reference, self.methods)):]
        return paired_differences(self.table[self.table["method"].isin(later)], baseline=reference)

    def changes_text(self, reference=None):
        """:func:`brainldm.evaluate.paired.format_changes` against ``reference`` (default the first method), as text."""
        changes = self.changes if reference in (None, self.methods[0]) else self.against(reference)
        return format_changes(changes).to_string(na_rep="–")

    def summary(self, method, reference=None):
        """What ``method`` did against ``reference`` (default the first method), in words
        (:func:`brainldm.evaluate.paired.summarise_changes`)."""
        changes = self.changes if reference in (None, self.methods[0]) else self.against(reference)
        return summarise_changes(changes, method)

    @property
    def means(self):
        """Mean identification of each method (rows) in each Table 1 column (columns)."""
        return self.table.pivot_table(index="method", columns="metric", values="score", sort=False).loc[
            list(self.methods), [c for c in IDENTIFICATION_COLUMNS if c in set(self.table["metric"])]].rename_axis(
            index=None, columns=None)

    def paper_rows(self, reference):
        """This subject's rows of a per-subject Table 1 (index (subject, method), e.g.
        :func:`brainldm.figures.reference.table1_by_subject`) for :attr:`methods`, the report's
        "CVPR baseline" named ``baseline``; no rows for a subject the report does not have."""
        subjects = reference.index.get_level_values(0)
        rows = reference.loc[self.subject] if self.subject in subjects else reference.iloc[:0].droplevel(0)
        rows = rows.rename(index={"CVPR baseline": "baseline"})
        return rows.loc[[m for m in self.methods if m in rows.index]]


class ExtensionRun:
    """One subject's ``+T``, ``+G`` and ``+D`` inputs and reconstructions, computed on first use and cached.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    settings : ExtensionSettings, optional
        Default :func:`extension_settings` of the dataset.

    Attributes
    ----------
    settings : ExtensionSettings
    ids : int array of shape (n,)
        The test images.
    """

    def __init__(self, ds, models, settings=None):
        self.ds, self.models = ds, models
        self.settings = settings or extension_settings(ds.name)
        self.keep = self.settings.keep
        self._recons = {}

    # --- decoded inputs -----------------------------------------------------------------
    @cached_property
    def decoded(self):
        """Every extension's :class:`brainldm.fit.decoding.Decoded` (all test images)."""
        return decode_extensions(self.ds, self.models, self.settings)

    def decoding(self, *names):
        """:func:`decoding_summary` of the decoders of ``names`` (of :data:`TARGETS`)."""
        return decoding_summary({name: self.decoded[name] for name in names})

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

    # --- +T -----------------------------------------------------------------------------
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

    def caption_table(self, n_shown=None):
        """The first true caption, the captioner's caption of the seen image and the decoded caption of each image."""
        shown = slice(n_shown)
        return pd.DataFrame({"true (first of its captions)": [caps[0] for caps in self.ds.captions(self.ids[shown])],
                             "captioner on the seen image": self.seen_captions[shown],
                             "decoded from fMRI": self.captions[shown]})

    def caption_quality(self):
        """Identification and cosine similarity of the decoded and the seen images' captions (see
        :func:`brainldm.evaluate.decoded.caption_scores`): mean, 95% CI and chance per (captions, metric)."""
        scores = caption_scores(self.models.text_encoder, self.ds.captions(self.ids),
                                {"decoded": self.captions, "seen image": self.seen_captions})
        chance = {"cosine": scores.pop("chance")["cosine"]}
        return pd.concat([score_table(values, chance, captions=name) for name, values in scores.items()],
                         ignore_index=True)

    def attribute_table(self):
        """World only: how often the captioner reads each attribute of the scene right, from the decoded
        and from the seen image's features, beside chance (:func:`brainldm.evaluate.decoded.attribute_table`)."""
        if not self.ds.has_ground_truth:
            raise BrainLDMError(f"the {self.ds.name} dataset has no scene attributes to check captions against")
        return attribute_table({"decoded": self.caption_model.attributes(self.features("caption")),
                                "seen image": self.caption_model.attributes(self.features("caption", "true"))},
                               scene_attributes(self.ds.scenes(self.ids)))

    # --- +G -----------------------------------------------------------------------------
    @cached_property
    def structural(self):
        """The ``+G`` optimisation: dict with ``z`` (n, channels, h, w), ``loss`` (iterations + 1, n), ``seconds``."""
        s = self.settings
        net = self.models.feature_nets[s.net]
        targets = {layer: self.features(f"structure.{layer}") for layer in CNN_LAYERS}
        weights = {layer: float(w) for layer, w in s.layer_weights.items()}
        params = {"model": self.models.cache_token, "net": s.net, "pool": s.pool,
                  "inputs": array_digest(self.z.numpy(), *targets.values()), "weights": weights,
                  "iterations": s.iterations, "lr": s.lr}

        def compute():
            z, loss, seconds = optimise_latents(self.models.ldm, net, self.z, targets, weights, s.pool, s.iterations,
                                                s.lr)
            return {"z": z.numpy(), "loss": loss, "seconds": np.float64(seconds)}

        arrays = cached_arrays("extension_structural", params, _VERSION, compute)
        return {"z": torch.from_numpy(arrays["z"]), "loss": arrays["loss"], "seconds": float(arrays["seconds"])}

    def structure_losses(self):
        """The ``+G`` loss per image (n,) of ``X_z`` (the start), ``X_g`` (the end) and of the seen image.

        The seen image's loss compares its own features with the decoded ones: an
        optimisation that goes below it is fitting the decoding errors.
        """
        weights = {layer: float(w) for layer, w in self.settings.layer_weights.items()}
        seen = {layer: torch.from_numpy(self.features(f"structure.{layer}", "true")) for layer in CNN_LAYERS}
        targets = {layer: torch.from_numpy(self.features(f"structure.{layer}")) for layer in CNN_LAYERS}
        loss = self.structural["loss"]
        return {"X_z": loss[0], "X_g": loss[-1], "seen image": feature_loss(seen, targets, weights).numpy()}

    def structure_cost(self):
        """What ``+G`` cost per image: network passes and wall time (text)."""
        seconds = self.structural["seconds"] / max(len(self.ids), 1)
        return (f"cost: {self.settings.iterations} forward and backward passes of the VAE decoder and the "
                f"{self.models.feature_nets[self.settings.net].name} per image, {seconds:.3f} s per image here")

    def images(self, which):
        """``X_z`` (decoded ``z``) or ``X_g`` (``+G``) images: uint8 (n, H, W, 3)."""
        check_choice("image", which, ("X_z", "X_g"))
        return self.models.ldm.decode(self.z if which == "X_z" else self.structural["z"])

    def start_image_scores(self):
        """``X_z`` against ``X_g``: PixCorr, SSIM and every identification column, and the change (a table)."""
        starts = {name: self.images(name)[:, None] for name in ("X_z", "X_g")}
        scores = evaluate_reconstructions(self.models, self.ds.images(self.ids), starts,
                                          methods={name: name for name in starts}, subject=self.ds.subject)
        wide = scores.pivot_table(index="metric", columns="method", values="mean", sort=False)[list(starts)]
        return wide.assign(change=wide["X_g"] - wide["X_z"]).rename_axis(index=None, columns=None)

    # --- +D -----------------------------------------------------------------------------
    @cached_property
    def depth_model(self):
        return depth_model(self.models, self.settings.depth_grid)

    def _depth_maps(self, which, batch_size=16):
        """:attr:`depth_model`'s maps of the ``which`` depth representation, ``batch_size`` images at a time
        (DPT's hidden states are 9.5 MB per image)."""
        representation = getattr(self.decoded["depth"], which)[self.keep]
        return np.concatenate([self.depth_model.depth_from(np.array(representation[start:start + batch_size]))
                               for start in range(0, max(len(representation), 1), batch_size)])

    @cached_property
    def depth_generator(self):
        """The depth-conditioned model set ``+D`` samples with (:func:`brainldm.features.depth.depth_generator`)."""
        return depth_generator(self.models)

    @cached_property
    def depth(self):
        """Depth maps decoded from fMRI, in :attr:`depth_model`'s convention: (n, h, w)."""
        return self._depth_maps("predicted")

    @cached_property
    def seen_depth(self):
        """Depth maps of the seen images' representation (the estimator's own maps): (n, h, w)."""
        return self._depth_maps("true")

    @cached_property
    def true_depth(self):
        """The scenes' own depth maps (the world) or the estimator's of the seen images (NSD), in its convention."""
        return true_depth(self.ds, self.depth_model, self.ids)

    def depth_panels(self, n_shown=None):
        """Rows of an image grid: the seen images, then the true, the estimator's and the decoded depth maps,
        all as inverse depth (bright = near)."""
        shown = slice(n_shown)
        maps = {"true depth": self.true_depth, "estimator on seen": self.seen_depth, "decoded": self.depth}
        return {"seen": self.ds.images(self.ids[shown]),
                **{name: convert_depth(m[shown], self.depth_model.convention, "disparity") for name, m in maps.items()}}

    def depth_quality(self):
        """Correlation with the true depth (beside chance: another image's map) and two-way identification of
        the decoded maps and of the estimator's maps of the seen images: mean, 95% CI and chance."""
        tables = []
        for name, maps in {"decoded": self.depth, "estimator on seen": self.seen_depth}.items():
            scores = depth_scores(maps, self.true_depth)
            tables.append(score_table({"r": scores["r"], "identification": scores["identification"]},
                                      {"r": scores["r chance"]}, depth=name))
        return pd.concat(tables, ignore_index=True)

    # --- reconstructions ----------------------------------------------------------------
    def baseline(self):
        """The baseline's ``X_zc``, its first ``n_samples`` samples: uint8 (n, s, H, W, 3).

        Reuses chapter 2's cached reconstructions: the same sampler as the extensions, with
        ``baseline_samples`` samples (chapter 2's default unless set).
        """
        s = self.settings
        n_samples = s.baseline_samples or sampler_settings(self.ds.name).n_samples
        if n_samples < s.sampler.n_samples:
            raise BrainLDMError(f"the baseline has {n_samples} samples per image but the extensions draw "
                                f"{s.sampler.n_samples}; set baseline_samples to at least n_samples")
        _, recon, _ = brain_reconstructions(self.ds, self.models, s.sampler.replace(n_samples=n_samples))
        return recon["X_zc"][self.keep, :s.sampler.n_samples]

    def reconstruct(self, method):
        """``X_zc`` of one of :data:`METHODS`: uint8 (n, s, H, W, 3), cached."""
        check_choice("method", method, METHODS)
        if method not in self._recons:
            self._recons[method] = self.baseline() if method == "baseline" else self._reconstruct(method)
        return self._recons[method]

    def _reconstruct(self, method):
        generator, depth = self.models, None
        z = self.z if method == "+T" else self.structural["z"]
        if method == "+T+G+D":
            generator = self.depth_generator
            depth = convert_depth(self.depth, self.depth_model.convention, CONDITIONING_CONVENTION[generator.name])
            if generator is not self.models:  # a different VAE: re-encode the +G image at its resolution
                z = generator.ldm.encode(resize_images(self.models.ldm.decode(z), generator.resolution))
        c = self.caption_c(generator)
        sampler = self.settings.sampler
        params = {"model": generator.cache_token, "method": method, **sampler.as_dict(),
                  "inputs": array_digest(z.numpy(), c.numpy(), *([] if depth is None else [depth]))}
        arrays = cached_arrays("extension_reconstructions", params, _VERSION, lambda: dict(reconstruct(
            generator.ldm, z, c, generator.uncond, sampler, depth=depth, which=("X_zc",))))
        return arrays["X_zc"]

    def panels(self, names, n_shown=None):
        """Rows of an image grid (:func:`brainldm.figures.viz.image_grid`): the seen images, then each of
        ``names``: ``X_z`` or ``X_g`` (the images img2img starts from) or a method (its first sample)."""
        shown = slice(n_shown)
        rows = {"seen": self.ds.images(self.ids[shown])}
        for name in names:
            rows[name if name in ("X_z", "X_g") else f"{name} X_zc"] = (
                self.images(name)[shown] if name in ("X_z", "X_g") else self.reconstruct(name)[shown, 0])
        return rows

    def compare(self, methods=METHODS):
        """Table 1's identification of ``methods`` on this subject, and their changes against the first.

        Returns
        -------
        comparison : MethodComparison
        """
        methods = tuple(methods)
        table = identification_table(self.models, self.ds.images(self.ids),
                                     {method: self.reconstruct(method) for method in methods}, subject=self.ds.subject)
        return MethodComparison(self.ds.subject, methods, table, paired_differences(table, baseline=methods[0]))


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
