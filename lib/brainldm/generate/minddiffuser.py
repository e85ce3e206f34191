"""MindDiffuser's second stage: refine ``z`` and ``c`` so the image's low-level features match the brain's.

MindDiffuser (Lu et al., ACM MM 2023) reconstructs in two stages. Stage 1 is Takagi &
Nishimoto's ``X_zc``: an img2img from the decoded image latent ``z`` under the decoded
text conditioning ``c``. Stage 2 decodes, from fMRI, the image encoder's *low-level*
features (CLIP's early layers: position, orientation, layout) and optimises the
diffusion inputs by backpropagation so that the generated image's features match them.

What this module differentiates (:attr:`RefineSettings.through`):

``"sampler"`` (the paper, and the authors' ``Reconstruction.py``)
    The variables are the img2img start latent ``z`` and, if asked, ``c``. One pass is
    the whole stage-1 pipeline with its noise held fixed: ``z`` noised to the first kept
    DDIM timestep, ``int(num_inference_steps * strength)`` deterministic DDIM steps of
    the U-Net with classifier-free guidance (two U-Net passes per step; the package's one
    sampler, :meth:`brainldm.models.ldm.LatentDiffusion.sample`), the VAE decoder, and the image
    encoder's early and middle layers (average-pooled to ``pool`` × ``pool``,
    :func:`brainldm.features.layers.pooled_layers`). Gradients flow through all of it.
``"decoder"`` (a cheap variant)
    The variable is the latent of the stage-1 image ``X_zc`` itself; only the VAE
    decoder and the image encoder are differentiated. ``c`` plays no part, so only
    ``z`` can be optimised.

The loss (:func:`brainldm.generate.optimise.feature_loss`) is, per image and layer, one minus
the Pearson correlation between the generated image's features and the decoded ones
(``loss="correlation"``: ridge predictions are shrunk towards the mean, and a correlation
ignores the scale), or the mean squared error divided by the decoded features' variance
(``loss="mse"``, the authors' choice), averaged over layers. The optimiser is Adam
(:func:`brainldm.generate.optimise.optimise_inputs`, the loop ``+G`` uses too).
"""

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from brainldm.data.cache import array_digest, cache_key, cached_arrays
from brainldm.errors import BrainLDMError, ParameterError, Rule
from brainldm.evaluate.metrics import bootstrap_ci, match_size, pixcorr, ssim
from brainldm.evaluate.paired import paired_differences
from brainldm.features.layers import feature_net_token, layer_slices, pooled_layers
from brainldm.features.stimulus import resize_images
from brainldm.fit.decoding import Decoded, decode, fit_predict
from brainldm.fit.ridge import RidgeRecipe, correlation_score
from brainldm.generate.extensions import decoding_summary
from brainldm.generate.optimise import LOSSES, CheckedSettings, optimise_inputs, feature_loss
from brainldm.generate.reconstruction import brain_reconstructions
from brainldm.models.ldm import SamplerSettings, images_to_tensor, sampler_settings, tensor_to_images

__all__ = ["STRUCTURE_LAYERS", "DEFAULT_ROI", "THROUGH", "RefineSettings", "stimulus_structure", "decode_structure",
           "structure_decoding", "refine", "Stage2Result", "minddiffuser_reconstructions", "clip_cosine",
           "Stage2Scores", "stage2_scores", "Stage2Variants", "stage2_variants"]

#: the image encoder's low-level layers MindDiffuser matches (CLIP's early layers on NSD)
STRUCTURE_LAYERS = ("early", "middle")
#: where the structural features are decoded from: early and intermediate visual cortex (MindDiffuser
#: uses V1–V3, hV4, V3ab, LO, MT, MST, IPS, VO and PHC)
DEFAULT_ROI = ("early", "midventral", "midlateral", "midparietal")
#: what stage 2 differentiates (see the module's notes)
THROUGH = ("sampler", "decoder")
#: the authors' stage 2 (``Reconstruction.py``): Adam iterations, and DDIM steps run of 50 (strength 0.7)
_AUTHORS = {"iterations": 300, "ddim_steps": 35}
_FEATURES_VERSION = "1"  # structural features of stimuli and their decoding
_STAGE2_VERSION = "3"  # 3: RefineSettings, the package's feature loss


@dataclass(frozen=True)
class RefineSettings(CheckedSettings):
    """What stage 2 optimises, through what, towards what: one frozen value, checked when made.

    Attributes
    ----------
    optimize : tuple of {"z", "c"}
        The variables (the paper optimises both; ``through="decoder"`` can only optimise ``z``).
    through : {"sampler", "decoder"}
        See the module's notes.
    n_iterations : int >= 0
        Adam steps (0 reproduces the start; the authors' code: 300).
    lr : float > 0
        Adam's step size, in units of each variable's standard deviation (over its elements), so
        that ``z`` and ``c``, whose values differ in scale, move alike.
    loss : {"correlation", "mse", "relative"}
        See :func:`brainldm.generate.optimise.feature_loss`; averaged over ``layers``.
    layers : tuple of str
        Image-encoder layers decoded and matched (default :data:`STRUCTURE_LAYERS`).
    pool : int >= 1
        Each layer's map average-pooled to at most ``pool`` × ``pool`` before decoding and matching.
    roi : tuple of str
        Where the low-level features are decoded from (default :data:`DEFAULT_ROI`).
    target : {"decoded", "true"}
        Match the features decoded from fMRI (MindDiffuser), or the seen image's own features:
        an oracle that shows what stage 2 could do with perfect decoding.
    standardize : bool
        Standardise every feature by its mean and s.d. over the training stimuli in the loss.
    batch_size : int >= 1
        Images optimised together (each has its own loss and variables).
    net : str
        The feature network of the model set (its image encoder, ``"clip"``).
    """

    optimize: tuple = ("z", "c")
    through: str = "sampler"
    n_iterations: int = 8
    lr: float = 0.1
    loss: str = "correlation"
    layers: tuple = STRUCTURE_LAYERS
    pool: int = 8
    roi: tuple = DEFAULT_ROI
    target: str = "decoded"
    standardize: bool = False
    batch_size: int = 16
    net: str = "clip"

    KIND = "stage2"
    RULES = {"optimize": Rule("str", choices=("z", "c"), many=True), "through": Rule("str", choices=THROUGH),
             "n_iterations": Rule("int", low=0), "lr": Rule("float", low=0, low_open=True),
             "loss": Rule("str", choices=LOSSES), "layers": Rule("str", many=True), "pool": Rule("int", low=1),
             "roi": Rule("str", many=True), "target": Rule("str", choices=("decoded", "true")),
             "standardize": Rule("bool"), "batch_size": Rule("int", low=1), "net": Rule("str")}

    def _check(self):
        for name in ("optimize", "layers", "roi"):
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise ParameterError(f"stage2[{name!r}] = {getattr(self, name)} lists a value twice")
        if self.through == "decoder" and "c" in self.optimize:
            raise ParameterError("through='decoder' optimises the stage-1 image's latent only: c does not reach "
                                 "the VAE decoder. Use optimize=('z',), or through='sampler' to optimise c")


# --- features ------------------------------------------------------------------------------------

def stimulus_structure(ds, models, ids, settings=None, batch_size=64):
    """Concatenated :func:`brainldm.features.layers.pooled_layers` of the stimuli ``ids`` (cached): float32 (n, d).

    ``settings`` (a :class:`RefineSettings`) gives the network, its layers and the pooling.
    """
    settings = settings or RefineSettings()
    net = models.feature_nets[settings.net]
    ids = np.asarray(ids, dtype=np.int64)
    uniq, inverse = np.unique(ids, return_inverse=True)

    def compute():
        parts = []
        with torch.no_grad():
            for start in range(0, len(uniq), batch_size):
                pixels = images_to_tensor(ds.images(uniq[start:start + batch_size]))
                feats = pooled_layers(net, pixels, settings.layers, settings.pool)
                parts.append(torch.cat([feats[layer] for layer in settings.layers], 1).cpu().numpy())
        return {"features": np.concatenate(parts).astype(np.float32)}

    params = {"stimuli": ds.cache_token, "net": feature_net_token(net), "layers": list(settings.layers),
              "pool": settings.pool, "ids": cache_key("ids", uniq.tolist(), "")}
    return cached_arrays("structure_features", params, _FEATURES_VERSION, compute)["features"][inverse]


def decode_structure(ds, models, settings=None):
    """Decode the low-level image-encoder features from fMRI, as :func:`brainldm.fit.decoding.decode` does ``z``.

    The ridge is fitted on repeat-averaged responses (folds grouped by image, penalties by
    cross-validation): with thousands of targets it is several times cheaper than single
    trials, with nearly the same test accuracy.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    settings : RefineSettings, optional
        Its ``net``, ``layers``, ``pool`` and ``roi``.

    Returns
    -------
    decoded : brainldm.fit.decoding.Decoded
        ``feature`` names the net, layers and pooling; ``predicted`` and ``true`` are
        (n_test, d) with the layers concatenated as :func:`brainldm.features.layers.layer_slices` says.
    """
    settings = settings or RefineSettings()
    roi = list(settings.roi)
    X, ids = ds.betas("train", roi=roi)
    X_test, test_ids = ds.betas("test", roi=roi, average=True)
    Y = stimulus_structure(ds, models, ids, settings)
    Y_test = stimulus_structure(ds, models, test_ids, settings)
    arrays = fit_predict(X, ids, X_test, Y, "structure_decoding", _FEATURES_VERSION, RidgeRecipe(train_on="averages"))
    name = f"{settings.net}:{'+'.join(settings.layers)}@{settings.pool}"
    return Decoded(feature=name, roi=roi, ids=test_ids, predicted=arrays["predicted"], true=Y_test,
                   r=correlation_score(Y_test, arrays["predicted"]), alphas=arrays["alphas"], n_voxels=X.shape[1],
                   constant=arrays["constant"])


def structure_decoding(ds, models, settings=None):
    """How well each low-level layer is decoded, beside chapter 2's ``z``.

    Returns
    -------
    table : pandas DataFrame
        :func:`brainldm.generate.extensions.decoding_summary` of each layer of
        :func:`decode_structure` and of ``z`` (:func:`brainldm.fit.decoding.decode`).
    """
    settings = settings or RefineSettings()
    structure = decode_structure(ds, models, settings)
    slices = layer_slices(models.feature_nets[settings.net], settings.layers, settings.pool)
    layers = {f"image encoder, {layer}": dataclasses.replace(
        structure, feature=f"{structure.feature}:{layer}", predicted=structure.predicted[:, cols],
        true=structure.true[:, cols], r=structure.r[cols], alphas=structure.alphas[cols],
        constant=structure.constant[cols]) for layer, cols in slices.items()}
    return decoding_summary({**layers, "z (chapter 2)": decode(ds, models, "z")})


# --- stage 2 -------------------------------------------------------------------------------------

def _by_layer(values, slices, device):
    values = torch.as_tensor(np.asarray(values, np.float32)).to(device)
    return {layer: values[..., cols] for layer, cols in slices.items()}


def refine(models, z, c, target, settings=None, sampler=None, first_index=0, standard=None):
    """Optimise ``z`` (and ``c``) of a batch of images so their low-level features match ``target``.

    Parameters
    ----------
    models : ModelSet
        Its latent diffusion model (the generator), empty-caption embedding and feature network.
    z : float tensor of shape (n, latent_channels, h, w)
        ``through="sampler"``: the decoded (img2img start) latents; ``"decoder"``: the
        latents of the stage-1 images.
    c : float tensor of shape (n, tokens, dim)
        Decoded text conditioning (unused by ``"decoder"``).
    target : float array of shape (n, d)
        Low-level features to match (:func:`decode_structure`), layers concatenated.
    settings : RefineSettings, optional
    sampler : brainldm.models.ldm.SamplerSettings, optional
        The img2img settings of stage 1 (default Takagi & Nishimoto's).
    first_index : int
        The fixed noise of image ``i`` of the batch is drawn from a generator seeded with
        ``sampler.seed * 1_000_003 + first_index + i``.
    standard : tuple of two arrays of shape (d,), optional
        Mean and scale that standardise the features in the loss (see
        :func:`brainldm.generate.optimise.feature_loss`).

    Returns
    -------
    result : dict
        ``before`` and ``after`` uint8 (n, H, W, 3) (iteration 0 and the last), ``loss``
        (n_iterations + 1, n), ``z`` (the optimised latents).
    """
    settings, sampler = settings or RefineSettings(), sampler or SamplerSettings()
    ldm, net, device = models.ldm, models.feature_nets[settings.net], models.ldm.device
    start = {"z": torch.as_tensor(z, dtype=torch.float32).to(device),
             "c": torch.as_tensor(c, dtype=torch.float32).to(device)}
    slices = layer_slices(net, settings.layers, settings.pool)
    targets = _by_layer(target, slices, device)
    standard = None if standard is None else {
        layer: (mean, scale) for (layer, mean), scale in zip(_by_layer(standard[0], slices, device).items(),
                                                           _by_layer(standard[1], slices, device).values())}
    weights = {layer: 1.0 / len(slices) for layer in slices}
    # each variable moves in units of its own spread: z = z0 + sd(z0) * u, so one lr suits z and c alike
    spread = {name: start[name].std().clamp_min(1e-6) for name in settings.optimize}
    fixed = {name: value for name, value in start.items() if name not in settings.optimize}
    noise = torch.stack([torch.randn(start["z"].shape[1:], generator=torch.Generator().manual_seed(
        sampler.seed * 1_000_003 + first_index + i)) for i in range(len(start["z"]))])

    def generate(variables):
        v = {**fixed, **variables}
        if settings.through == "decoder":
            return ldm.decode_pixels(v["z"], checkpoint=True)
        # the whole stage-1 img2img, its noise held fixed, each U-Net call recomputed in the backward pass
        latents = ldm.sample(v["z"], v["c"], noise, sampler, uncond=models.uncond, checkpoint=True)
        return ldm.decode_pixels(latents, checkpoint=True)

    def score(pixels):
        return feature_loss(pooled_layers(net, pixels, settings.layers, settings.pool), targets, weights,
                            settings.loss, standard)

    variables, losses, first, last = optimise_inputs({name: start[name] for name in settings.optimize}, generate,
                                                     score, settings.n_iterations, settings.lr, spread,
                                                     desc="MindDiffuser stage 2")
    return {"before": tensor_to_images(first), "after": tensor_to_images(last), "loss": losses,
            "z": {**fixed, **variables}["z"].cpu().numpy()}


@dataclass(frozen=True)
class Stage2Result:
    """Stage 1 and stage 2 of MindDiffuser for the first test images (what :func:`minddiffuser_reconstructions` returns).

    Attributes
    ----------
    ids : int array of shape (n,)
        The test images.
    seen : uint8 array of shape (n, H, W, 3)
        The images that were seen.
    images : dict of str to uint8 array (n, h, w, 3)
        ``X_z`` (the decoded ``z`` through the VAE decoder), ``X_zc`` (stage 1's first sample),
        ``stage 2 start`` (iteration 0: stage 1 again with stage 2's fixed noise for
        ``"sampler"``, ``X_zc`` through the VAE for ``"decoder"``) and ``stage 2``.
    loss : float array of shape (n_iterations + 1, n)
    seconds_per_image : float
        Wall time of stage 2.
    ddim_steps : int
        DDIM steps of one pass through the sampler (0 through the decoder).
    decoded : brainldm.fit.decoding.Decoded
        The structural features decoded from fMRI.
    settings : RefineSettings
    sampler : brainldm.models.ldm.SamplerSettings
    """

    ids: np.ndarray
    seen: np.ndarray
    images: dict
    loss: np.ndarray
    seconds_per_image: float
    ddim_steps: int
    decoded: Decoded
    settings: RefineSettings
    sampler: SamplerSettings

    @property
    def unet_passes(self):
        """U-Net passes per image, ``forward`` and ``backward`` (two per DDIM step with guidance)."""
        per_pass = self.ddim_steps * (2 if self.sampler.guidance_scale > 1.0 else 1)
        n = self.settings.n_iterations
        return {"forward": per_pass * (n + 1), "backward": per_pass * n}

    @property
    def vae_passes(self):
        """VAE decoder (and image encoder) passes per image, ``forward`` and ``backward``."""
        return {"forward": self.settings.n_iterations + 1, "backward": self.settings.n_iterations}

    def describe(self):
        """What was optimised, through what, and how far the loss fell (text)."""
        s = self.settings
        lines = [f"optimised: {' and '.join(s.optimize)}, through the {s.through}, {s.n_iterations} Adam iterations "
                 f"(lr {s.lr}), loss: {s.loss}, {len(self.ids)} test images"]
        if s.through == "sampler":
            lines.append(f"one pass: {self.ddim_steps} DDIM steps = {self.unet_passes['forward'] // (s.n_iterations + 1)}"
                         " U-Net passes, the VAE decoder and the image encoder")
        lines.append(f"mean loss over images: {self.loss[0].mean():.3f} at iteration 0, {self.loss[-1].mean():.3f} "
                     f"after {s.n_iterations}")
        return "\n".join(lines)

    def panels(self, n_shown=None, names=("X_z", "X_zc", "stage 2 start", "stage 2")):
        """Rows of an image grid (:func:`brainldm.figures.viz.image_grid`) by label: the seen images, then ``names``."""
        shown = slice(n_shown)
        return {"seen": self.seen[shown],
                **{f"{name} (stage 1)" if name == "X_zc" else name: self.images[name][shown] for name in names}}


def _stage1(ds, models, sampler, n_images):
    """Stage 1 as chapters 2 and 3 make it (one cached result for every test image), then the first ``n_images``."""
    ids, recon, decoded = brain_reconstructions(ds, models, sampler)
    n = len(ids) if n_images is None else min(int(n_images), len(ids))
    return ids[:n], {"X_z": recon["X_z"][:n], "X_zc": recon["X_zc"][:n, 0]}, decoded


def minddiffuser_reconstructions(ds, models, settings=None, sampler=None, n_images=None):
    """Stage 1 (Takagi's ``X_zc``, cached by :func:`brainldm.generate.reconstruction.brain_reconstructions`) and stage 2.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    settings : RefineSettings, optional
    sampler : brainldm.models.ldm.SamplerSettings, optional
        The stage-1 settings (default :func:`brainldm.models.ldm.sampler_settings` of the dataset);
        stage 2 refines the first sample of each image with the same img2img settings.
    n_images : int, optional
        Refine the first ``n_images`` test images (all by default).

    Returns
    -------
    result : Stage2Result
    """
    settings, sampler = settings or RefineSettings(), sampler or sampler_settings(ds.name)
    ids, stage1, decoded = _stage1(ds, models, sampler, n_images)
    n = len(ids)
    structure = decode_structure(ds, models, settings)
    if not np.array_equal(structure.ids[:n], ids):
        raise BrainLDMError("the structural features and the reconstructions were decoded for different test "
                            "images; both should come from ds.betas('test', average=True)")
    z = decoded["z"].unflatten(models)[:n]
    c = decoded["c"].unflatten(models)[:n]
    if settings.through == "decoder":
        z = models.ldm.encode(resize_images(stage1["X_zc"], models.resolution)).numpy()
    target = (structure.predicted if settings.target == "decoded" else structure.true)[:n]
    standard = None
    if settings.standardize:
        train = stimulus_structure(ds, models, ds.image_ids("train"), settings)
        standard = (train.mean(0), train.std(0) + 1e-6 * train.std(0).max())
    sampling = {k: v for k, v in sampler.as_dict().items() if k not in ("n_samples", "batch_size", "size")}
    params = {"model": models.cache_token, "net": feature_net_token(models.feature_nets[settings.net]),
              "inputs": array_digest(z, c, target, stage1["X_zc"]), **settings.as_dict(), "sampler": sampling,
              "standard": array_digest(*standard) if standard else None}

    def compute():
        parts = []
        start_time = time.perf_counter()
        for start in range(0, n, settings.batch_size):
            part = slice(start, start + settings.batch_size)
            parts.append(refine(models, z[part], c[part], target[part], settings, sampler, start, standard))
        seconds = time.perf_counter() - start_time
        return {"before": np.concatenate([p["before"] for p in parts]),
                "after": np.concatenate([p["after"] for p in parts]),
                "loss": np.concatenate([p["loss"] for p in parts], axis=1),
                "seconds_per_image": np.float64(seconds / max(n, 1))}

    arrays = cached_arrays("minddiffuser", params, _STAGE2_VERSION, compute)
    steps = (len(models.ldm.timesteps(sampler.strength, sampler.num_inference_steps)[1])
             if settings.through == "sampler" else 0)
    images = {**stage1, "stage 2 start": arrays["before"], "stage 2": arrays["after"]}
    return Stage2Result(ids, ds.images(ids), images, arrays["loss"], float(arrays["seconds_per_image"]), steps,
                        structure, settings, sampler)


# --- scores --------------------------------------------------------------------------------------

def clip_cosine(models, seen, gen, net="clip", layer="embedding"):
    """Cosine similarity of image-encoder embeddings (CLIP's on NSD) of each image and its reconstruction.

    Parameters
    ----------
    seen, gen : uint8 arrays of shape (n, H, W, 3)

    Returns
    -------
    cosine : array of shape (n,)
    """
    network = models.feature_nets[net]
    a = network(np.asarray(seen), [layer])[layer].astype(np.float64)
    b = network(np.asarray(gen), [layer])[layer].astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


@dataclass(frozen=True)
class Stage2Scores:
    """CLIP cosine, SSIM and PixCorr of sets of images (what :func:`stage2_scores` returns).

    Attributes
    ----------
    per_image : pandas DataFrame
        One row per (method, metric, image): columns ``method`` (the set of images), ``metric``,
        ``image`` (position) and ``score``.
    table : pandas DataFrame
        One row per (method, metric): ``mean`` over images and its 95% bootstrap CI (``ci_low``,
        ``ci_high``), what :func:`brainldm.figures.ci_bars` draws.
    """

    per_image: pd.DataFrame
    table: pd.DataFrame

    def means(self):
        """The mean of each metric (columns) for each set of images (rows)."""
        return self.table.pivot_table(index="method", columns="metric", values="mean", sort=False).rename_axis(
            index=None, columns=None)

    def change(self, after, before):
        """:func:`brainldm.evaluate.paired.paired_differences` of ``after`` against ``before``, image by image."""
        rows = self.per_image[self.per_image["method"].isin([before, after])]
        return paired_differences(rows, baseline=before)


def stage2_scores(models, seen, images):
    """CLIP cosine, SSIM and PixCorr of each set of images, with 95% bootstrap CIs over images.

    Parameters
    ----------
    models : ModelSet
    seen : uint8 array of shape (n, H, W, 3)
    images : dict of str to uint8 array (n, h, w, 3)
        E.g. :attr:`Stage2Result.images`; resized to the seen images' size if needed.

    Returns
    -------
    scores : Stage2Scores
    """
    per_image, table = [], []
    for name, gen in images.items():
        gen = match_size(seen, gen)[:, 0]
        scores = {"CLIP cosine": clip_cosine(models, seen, gen), "SSIM": ssim(seen, gen), "PixCorr": pixcorr(seen, gen)}
        for metric, values in scores.items():
            values = np.asarray(values, np.float64).reshape(len(seen))
            per_image.append(pd.DataFrame({"method": name, "metric": metric, "image": np.arange(len(values)),
                                           "score": values}))
            mean, low, high = bootstrap_ci(values)
            table.append({"method": name, "metric": metric, "mean": mean, "ci_low": low, "ci_high": high})
    return Stage2Scores(pd.concat(per_image, ignore_index=True), pd.DataFrame(table))


@dataclass(frozen=True)
class Stage2Variants:
    """Stage 2 and the runs that each change one thing (what :func:`stage2_variants` returns).

    Attributes
    ----------
    runs : dict of str to Stage2Result
        ``stage 2``, optionally ``oracle`` (towards the seen images' true features) and ``VAE
        decoder only`` (the stage-1 image's latent through the VAE decoder alone).
    changes : pandas DataFrame
        Each run's change (``stage 2`` − ``stage 2 start``) per metric with its CI
        (:func:`brainldm.evaluate.paired.paired_differences`), column ``run``.
    """

    runs: dict
    changes: pd.DataFrame

    def table(self):
        """The mean change of each metric (columns) made by each run (rows)."""
        return self.changes.pivot_table(index="run", columns="metric", values="change", sort=False).rename_axis(
            index=None, columns=None)

    @property
    def losses(self):
        """Each run's loss along its iterations: dict of str to array (n_iterations + 1, n)."""
        return {name: result.loss for name, result in self.runs.items()}

    def panels(self, n_shown=None):
        """Rows of an image grid by label: the seen images, then each run's refined images."""
        shown = slice(n_shown)
        first = next(iter(self.runs.values()))
        return {"seen": first.seen[shown], **{name: r.images["stage 2"][shown] for name, r in self.runs.items()}}

    def cost(self):
        """Network passes per image of each run, the wall time of stage 2, and the authors' setting at that rate (text)."""
        lines = [f"{name}: per image {r.unet_passes['forward']} U-Net forward and {r.unet_passes['backward']} backward "
                 f"passes, {r.vae_passes['forward']} VAE decoder and image-encoder passes"
                 for name, r in self.runs.items()]
        main = self.runs["stage 2"]
        guided = 2 if main.sampler.guidance_scale > 1.0 else 1
        authors = _AUTHORS["iterations"] * _AUTHORS["ddim_steps"] * guided
        lines.append(f"the authors' setting ({_AUTHORS['iterations']} iterations through {_AUTHORS['ddim_steps']} DDIM "
                     f"steps): {authors:,} U-Net forward and as many backward passes per image, against "
                     f"{_AUTHORS['ddim_steps'] * guided} forward passes of one stage-1 reconstruction")
        per_step = main.seconds_per_image / (main.settings.n_iterations + 1) / max(main.ddim_steps, 1)
        lines.append(f"stage 2 took {main.seconds_per_image:.1f} s per image here; with these models the authors' "
                     f"setting would take about {per_step * _AUTHORS['iterations'] * _AUTHORS['ddim_steps']:.0f} s "
                     "per image")
        return "\n".join(lines)


def stage2_variants(ds, models, settings=None, sampler=None, n_images=None, oracle=True):
    """Stage 2 beside an oracle and a cheaper variant, each scored against its own start.

    Three runs from the same start, each changing one thing: ``stage 2`` (``settings``), the
    ``oracle`` (the same towards the seen images' true low-level features: perfect decoding; with
    ``oracle``) and ``VAE decoder only`` (``through="decoder"``, ``optimize=("z",)``).

    Parameters
    ----------
    ds, models, settings, sampler, n_images
        See :func:`minddiffuser_reconstructions`.
    oracle : bool

    Returns
    -------
    variants : Stage2Variants
    """
    settings = settings or RefineSettings()
    variants = {"stage 2": settings}
    if oracle:
        variants["oracle"] = settings.replace(target="true")
    variants["VAE decoder only"] = settings.replace(through="decoder", optimize=("z",))
    runs, changes = {}, []
    for name, variant in variants.items():
        runs[name] = result = minddiffuser_reconstructions(ds, models, variant, sampler, n_images)
        scores = stage2_scores(models, result.seen, {k: result.images[k] for k in ("stage 2 start", "stage 2")})
        changes.append(scores.change("stage 2", "stage 2 start").assign(run=name))
    return Stage2Variants(runs, pd.concat(changes, ignore_index=True))
