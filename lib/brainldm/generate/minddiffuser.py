"""MindDiffuser's second stage: refine ``z`` and ``c`` so the image's low-level features match the brain's.

MindDiffuser (Lu et al., ACM MM 2023) reconstructs in two stages. Stage 1 is Takagi &
Nishimoto's ``X_zc``: an img2img from the decoded image latent ``z`` under the decoded
text conditioning ``c``. Stage 2 decodes, from fMRI, the image encoder's *low-level*
features (CLIP's early layers: position, orientation, layout) and optimises the
diffusion inputs by backpropagation so that the generated image's features match them.

What this module differentiates (``through``):

``"sampler"`` (the paper, and the authors' ``Reconstruction.py``)
    The variables are the img2img start latent ``z`` and, if asked, ``c``. One pass is
    the whole stage-1 pipeline with its noise held fixed: ``z`` noised to the first kept
    DDIM timestep, ``int(num_inference_steps * strength)`` deterministic DDIM steps of
    the U-Net with classifier-free guidance (two U-Net passes per step), the VAE
    decoder, and the image encoder's early and middle layers (average-pooled to
    ``pool`` × ``pool``). Gradients flow through all of it.
``"decoder"`` (a cheap variant)
    The variable is the latent of the stage-1 image ``X_zc`` itself; only the VAE
    decoder and the image encoder are differentiated. ``c`` plays no part, so only
    ``z`` can be optimised.

The loss is, per image and layer, one minus the Pearson correlation between the
generated image's features and the decoded ones (``loss="correlation"``: ridge
predictions are shrunk towards the mean, and a correlation ignores the scale), or the
mean squared error divided by the decoded features' variance (``loss="mse"``, the
authors' choice); layers are weighted equally. The optimiser is Adam.
"""

import time

import numpy as np
import torch
import torch.nn.functional as F

from brainldm.data.cache import array_digest, cache_key, cached_arrays
from brainldm.fit.decoding import Decoded, fit_predict
from brainldm.errors import BrainLDMError, check_choice
from brainldm.models.ldm import SamplerSettings, images_to_tensor, sampler_settings, tensor_to_images
from brainldm.generate.optimise import optimise_inputs
from brainldm.fit.ridge import DEFAULT_ALPHAS, correlation_score

__all__ = ["STRUCTURE_LAYERS", "DEFAULT_ROI", "THROUGH", "LOSSES", "structure_features", "layer_slices",
           "stimulus_structure", "decode_structure", "structural_loss", "refine", "minddiffuser_reconstructions",
           "clip_cosine", "stage2_scores", "paired_differences"]

#: the image encoder's low-level layers MindDiffuser matches (CLIP's early layers on NSD)
STRUCTURE_LAYERS = ("early", "middle")
#: where the structural features are decoded from: early and intermediate visual cortex (MindDiffuser
#: uses V1–V3, hV4, V3ab, LO, MT, MST, IPS, VO and PHC)
DEFAULT_ROI = ("early", "midventral", "midlateral", "midparietal")
THROUGH = ("sampler", "decoder")
LOSSES = ("correlation", "mse")
_FEATURES_VERSION = "1"  # structural features of stimuli and their decoding
_STAGE2_VERSION = "2"  # the optimisation


# --- features ------------------------------------------------------------------------------------

def _as_map(act):
    """A layer's activations as a map (n, channels, g, g): ViT tokens (CLS first) are laid on their grid."""
    if act.ndim == 4:
        return act
    if act.ndim == 3:
        tokens = act.shape[1]
        for drop in (1, 0):  # with and without a class token
            side = int(round((tokens - drop) ** 0.5))
            if side * side == tokens - drop and side > 0:
                return act[:, drop:].transpose(1, 2).reshape(act.shape[0], act.shape[2], side, side)
    return None


def structure_features(models, pixels, layers=STRUCTURE_LAYERS, pool=8, net="clip"):
    """Low-level image-encoder features of images, differentiable with respect to ``pixels``.

    Parameters
    ----------
    models : ModelSet
    pixels : float tensor of shape (n, 3, H, W) in [-1, 1]
    layers : tuple of str
        Layers of ``models.feature_nets[net]``.
    pool : int or None
        Average-pool each layer's map (convolutional channels, or ViT patch tokens laid on
        their grid) to at most ``pool`` × ``pool``; None keeps every unit.
    net : str

    Returns
    -------
    features : dict of str to float tensor of shape (n, d_layer)
    """
    network = models.feature_nets[net]
    size = network.input_size
    if pixels.shape[-1] != size or pixels.shape[-2] != size:
        pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    acts = network.forward(pixels)
    out = {}
    for layer in layers:
        if layer not in acts:
            raise BrainLDMError(f"the {network.name} has no layer {layer!r}; it has {', '.join(acts)}")
        act = acts[layer].float()
        grid = _as_map(act) if pool else None
        if grid is not None:
            act = F.adaptive_avg_pool2d(grid, min(int(pool), grid.shape[-1]))
        out[layer] = act.flatten(1)
    return out


def layer_slices(models, layers=STRUCTURE_LAYERS, pool=8, net="clip"):
    """Where each layer sits in the concatenated feature vector: dict of str to slice."""
    size = models.feature_nets[net].input_size
    with torch.no_grad():
        probe = structure_features(models, torch.zeros(1, 3, size, size), layers, pool, net)
    slices, start = {}, 0
    for layer in layers:
        slices[layer] = slice(start, start + probe[layer].shape[1])
        start += probe[layer].shape[1]
    return slices


def _net_token(models, net):
    from brainldm.generate.overlap import feature_net_token

    return feature_net_token(models.feature_nets[net])


def stimulus_structure(ds, models, ids, layers=STRUCTURE_LAYERS, pool=8, net="clip", batch_size=64):
    """Concatenated :func:`structure_features` of the stimuli ``ids`` (cached): float32 (n, d)."""
    ids = np.asarray(ids, dtype=np.int64)
    uniq, inverse = np.unique(ids, return_inverse=True)

    def compute():
        parts = []
        with torch.no_grad():
            for start in range(0, len(uniq), batch_size):
                pixels = images_to_tensor(ds.images(uniq[start:start + batch_size]))
                feats = structure_features(models, pixels, layers, pool, net)
                parts.append(torch.cat([feats[layer] for layer in layers], 1).cpu().numpy())
        return {"features": np.concatenate(parts).astype(np.float32)}

    params = {"stimuli": ds.cache_token, "net": _net_token(models, net), "layers": list(layers), "pool": pool,
              "ids": cache_key("ids", uniq.tolist(), "")}
    return cached_arrays("structure_features", params, _FEATURES_VERSION, compute)["features"][inverse]


def decode_structure(ds, models, layers=STRUCTURE_LAYERS, pool=8, roi=DEFAULT_ROI, net="clip",
                     alphas=DEFAULT_ALPHAS, n_folds=5, train_on="averages", random_state=0):
    """Decode the low-level image-encoder features from fMRI, as :func:`brainldm.fit.decoding.decode` does ``z``.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    layers, pool, net
        See :func:`structure_features`.
    roi : str or list of str
        Default :data:`DEFAULT_ROI`.
    alphas, n_folds, train_on, random_state
        See :class:`brainldm.fit.ridge.GroupRidgeCV`. ``train_on="averages"`` fits repeat-averaged
        responses: with thousands of targets it is several times cheaper than single trials,
        with nearly the same test accuracy.

    Returns
    -------
    decoded : brainldm.fit.decoding.Decoded
        ``feature`` names the net, layers and pooling; ``predicted`` and ``true`` are
        (n_test, d) with the layers concatenated as :func:`layer_slices` says.
    """
    roi = list(roi) if not isinstance(roi, str) else roi
    X, ids = ds.betas("train", roi=roi)
    X_test, test_ids = ds.betas("test", roi=roi, average=True)
    Y = stimulus_structure(ds, models, ids, layers, pool, net)
    Y_test = stimulus_structure(ds, models, test_ids, layers, pool, net)

    arrays = fit_predict(X, ids, X_test, Y, "structure_decoding", _FEATURES_VERSION, alphas, n_folds, train_on,
                         random_state)
    name = f"{net}:{'+'.join(layers)}@{pool}"
    return Decoded(feature=name, roi=roi, ids=test_ids, predicted=arrays["predicted"], true=Y_test,
                   r=correlation_score(Y_test, arrays["predicted"]), alphas=arrays["alphas"], n_voxels=X.shape[1],
                   constant=arrays["constant"])


# --- the loss ------------------------------------------------------------------------------------

def structural_loss(features, target, slices, loss="correlation", mean=None, scale=None):
    """Per-image loss between generated and decoded features.

    Parameters
    ----------
    features : dict of str to tensor (n, d_layer)
        :func:`structure_features` of the generated images.
    target : tensor of shape (n, d)
        Decoded features, layers concatenated as ``slices`` says.
    slices : dict of str to slice
    loss : {"correlation", "mse"}
        ``1 - r`` or the MSE divided by the target's variance, averaged over layers.
    mean, scale : tensor of shape (d,), optional
        Standardise every feature first (``(f - mean) / scale``, e.g. over the training
        stimuli), so that the loss weighs how an image departs from the average image
        rather than the layout every image shares.

    Returns
    -------
    loss : tensor of shape (n,)
    """
    check_choice("loss", loss, LOSSES)
    total = 0.0
    for layer, cols in slices.items():
        a = features[layer]
        b = target[:, cols].to(a.device, a.dtype)
        if mean is not None:
            m = mean[cols].to(a.device, a.dtype)
            sd = scale[cols].to(a.device, a.dtype)
            a, b = (a - m) / sd, (b - m) / sd
        if loss == "correlation":
            a = a - a.mean(1, keepdim=True)
            b = b - b.mean(1, keepdim=True)
            total = total + 1 - (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
        else:
            total = total + ((a - b) ** 2).mean(1) / b.var(1).clamp_min(1e-12)
    return total / len(slices)


# --- stage 2 -------------------------------------------------------------------------------------

def refine(ldm, models, z, c, uncond, target, slices, optimize=("z", "c"), through="sampler", n_iterations=10,
           lr=0.1, loss="correlation", strength=0.8, guidance_scale=5.0, num_inference_steps=50, seed=0,
           first_index=0, layers=STRUCTURE_LAYERS, pool=8, net="clip", feature_mean=None, feature_scale=None,
           progress=True):
    """Optimise ``z`` (and ``c``) of a batch of images so their low-level features match ``target``.

    Parameters
    ----------
    ldm : brainldm.models.ldm.LatentDiffusion
    models : ModelSet
        Provides the feature network.
    z : float tensor of shape (n, latent_channels, h, w)
        ``through="sampler"``: the decoded (img2img start) latents; ``"decoder"``: the
        latents of the stage-1 images.
    c : float tensor of shape (n, tokens, dim)
        Decoded text conditioning (unused by ``"decoder"``).
    uncond : tensor of shape (1, tokens, dim)
    target : float tensor of shape (n, d)
        Decoded low-level features (:func:`decode_structure`).
    slices : dict of str to slice
        :func:`layer_slices` of ``layers``.
    optimize : tuple of {"z", "c"}
    through : {"sampler", "decoder"}
    n_iterations : int
        Adam steps (0 reproduces the start).
    lr : float
        Adam's step size, in units of each variable's standard deviation (over its elements).
    loss : {"correlation", "mse"}
    strength, guidance_scale, num_inference_steps
        The img2img settings of stage 1.
    seed, first_index : int
        The fixed noise of image ``i`` of the batch is drawn from a generator seeded with
        ``seed * 1_000_003 + first_index + i``.
    layers, pool, net
        See :func:`structure_features`.
    feature_mean, feature_scale : array of shape (d,), optional
        Standardise the features in the loss (see :func:`structural_loss`).
    progress : bool

    Returns
    -------
    result : dict
        ``before`` and ``after`` uint8 (n, H, W, 3) (iteration 0 and the last), ``loss``
        (n_iterations + 1, n), ``z`` (the optimised latents).
    """
    check_choice("through", through, THROUGH)
    optimize = tuple(optimize)
    if not optimize or set(optimize) - {"z", "c"}:
        raise BrainLDMError(f"optimize must name 'z', 'c' or both, got {optimize}")
    if through == "decoder" and "c" in optimize:
        raise BrainLDMError("through='decoder' optimises the stage-1 image's latent only: c does not reach "
                            "the VAE decoder. Use optimize=('z',), or through='sampler' to optimise c")
    if int(n_iterations) < 0:
        raise BrainLDMError(f"n_iterations must be >= 0, got {n_iterations}")
    device = ldm.device
    start = {"z": torch.as_tensor(z, dtype=torch.float32).to(device),
             "c": torch.as_tensor(c, dtype=torch.float32).to(device)}
    target = torch.as_tensor(target, dtype=torch.float32).to(device)
    standard = {} if feature_mean is None else {
        "mean": torch.as_tensor(feature_mean, dtype=torch.float32).to(device),
        "scale": torch.as_tensor(feature_scale, dtype=torch.float32).to(device)}
    # each variable moves in units of its own spread: z = z0 + sd(z0) * u, so one lr suits z and c alike
    spread = {name: start[name].std().clamp_min(1e-6) for name in optimize}
    fixed = {name: value for name, value in start.items() if name not in optimize}
    if through == "sampler":
        sampling = SamplerSettings(strength=strength, guidance_scale=guidance_scale,
                                   num_inference_steps=num_inference_steps)
        noise = torch.stack([torch.randn(start["z"].shape[1:], generator=torch.Generator().manual_seed(
            seed * 1_000_003 + first_index + i)) for i in range(len(z))])

    def generate(variables):
        v = {**fixed, **variables}
        if through == "decoder":
            return ldm.decode_pixels(v["z"], checkpoint=True)
        # the whole stage-1 img2img, its noise held fixed, each U-Net call recomputed in the backward pass
        latents = ldm.sample(v["z"], v["c"], noise, sampling, uncond=uncond, checkpoint=True)
        return ldm.decode_pixels(latents, checkpoint=True)

    def score(pixels):
        return structural_loss(structure_features(models, pixels, layers, pool, net), target, slices, loss,
                               **standard)

    variables, losses, first, last = optimise_inputs({name: start[name] for name in optimize}, generate, score,
                                                     n_iterations, lr, spread, progress, "MindDiffuser stage 2")
    return {"before": tensor_to_images(first), "after": tensor_to_images(last), "loss": losses,
            "z": {**fixed, **variables}["z"].cpu().numpy()}


def minddiffuser_reconstructions(ds, models, n_images=None, optimize=("z", "c"), through="sampler",
                                 n_iterations=10, lr=0.1, loss="correlation", layers=STRUCTURE_LAYERS, pool=8,
                                 roi=DEFAULT_ROI, target="decoded", standardize=False, strength=0.8,
                                 guidance_scale=5.0,
                                 num_inference_steps=50, n_samples=5, seed=0, batch_size=16):
    """Stage 1 (Takagi's ``X_zc``, cached by :func:`brainldm.generate.reconstruction.brain_reconstructions`) and stage 2.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    n_images : int, optional
        Refine the first ``n_images`` test images (all by default).
    optimize, through, n_iterations, lr, loss
        See :func:`refine`.
    layers, pool, roi
        See :func:`decode_structure`.
    target : {"decoded", "true"}
        Match the features decoded from fMRI (MindDiffuser), or the seen image's own
        features: an oracle that shows what stage 2 could do with perfect decoding.
    standardize : bool
        Standardise every feature by its mean and s.d. over the training stimuli in the loss.
    strength, guidance_scale, num_inference_steps, n_samples, seed
        The stage-1 settings (:func:`brainldm.generate.reconstruction.settings_for`); stage 2 refines one
        sample per image with the same img2img settings.
    batch_size : int
        Images optimised together (each has its own loss and variables).

    Returns
    -------
    ids : int array of shape (n,)
    images : dict of str to uint8 array (n, H, W, 3)
        ``X_zc`` (stage 1's first sample), ``stage 2 start`` (iteration 0: stage 1 again
        with stage 2's fixed noise for ``"sampler"``, ``X_zc`` through the VAE for
        ``"decoder"``) and ``stage 2``.
    info : dict
        ``loss`` (n_iterations + 1, n), ``seconds_per_image`` (wall time of stage 2),
        ``unet_passes`` and ``vae_passes`` per image (forward and backward), ``decoded``
        (the :class:`~brainldm.fit.decoding.Decoded` structural features), the settings.
    """
    from brainldm.generate.reconstruction import brain_reconstructions

    check_choice("through", through, THROUGH)
    check_choice("target", target, ("decoded", "true"))
    # every test image, as chapters 2 and 3 reconstruct them (one cached result), then the first n_images
    stage1_settings = sampler_settings(ds.name, strength=strength, guidance_scale=guidance_scale,
                                       num_inference_steps=num_inference_steps, n_samples=n_samples, seed=seed)
    ids, recon, decoded = brain_reconstructions(ds, models, stage1_settings)
    n = len(ids) if n_images is None else min(int(n_images), len(ids))
    ids = ids[:n]
    structure = decode_structure(ds, models, layers, pool, roi)
    if not np.array_equal(structure.ids[:n], ids):
        raise BrainLDMError("the structural features and the reconstructions were decoded for different test "
                            "images; both should come from ds.betas('test', average=True)")
    slices = layer_slices(models, layers, pool)
    z = decoded["z"].unflatten(models)[:n]
    c = decoded["c"].unflatten(models)[:n]
    stage1 = recon["X_zc"][:n, 0]
    if through == "decoder":
        from brainldm.features.stimulus import resize_images

        z = models.ldm.encode(resize_images(stage1, models.resolution)).numpy()
    target = (structure.predicted if target == "decoded" else structure.true)[:n]
    standard = {}
    if standardize:
        train = stimulus_structure(ds, models, ds.image_ids("train"), layers, pool)
        standard = {"feature_mean": train.mean(0), "feature_scale": train.std(0) + 1e-6 * train.std(0).max()}
    params = {"model": models.cache_token, "net": _net_token(models, "clip"),
              "inputs": array_digest(z, c, target, stage1), "optimize": sorted(optimize), "through": through,
              "n_iterations": int(n_iterations), "lr": lr, "loss": loss, "layers": list(layers), "pool": pool,
              "standard": array_digest(*standard.values()) if standard else None,
              "strength": strength, "guidance_scale": guidance_scale, "num_inference_steps": num_inference_steps,
              "seed": seed, "batch_size": batch_size}

    def compute():
        parts = []
        start_time = time.perf_counter()
        for start in range(0, n, batch_size):
            part = slice(start, start + batch_size)
            parts.append(refine(models.ldm, models, z[part], c[part], models.uncond, target[part], slices,
                                optimize=optimize, through=through, n_iterations=n_iterations, lr=lr, loss=loss,
                                strength=strength, guidance_scale=guidance_scale,
                                num_inference_steps=num_inference_steps, seed=seed, first_index=start,
                                layers=layers, pool=pool, **standard))
        seconds = time.perf_counter() - start_time
        return {"before": np.concatenate([p["before"] for p in parts]),
                "after": np.concatenate([p["after"] for p in parts]),
                "loss": np.concatenate([p["loss"] for p in parts], axis=1),
                "seconds_per_image": np.float64(seconds / max(n, 1))}

    arrays = cached_arrays("minddiffuser", params, _STAGE2_VERSION, compute)
    n_steps = len(models.ldm.timesteps(strength, num_inference_steps)[1]) if through == "sampler" else 0
    unet_per_pass = n_steps * (2 if guidance_scale > 1.0 else 1)
    info = {"loss": arrays["loss"], "seconds_per_image": float(arrays["seconds_per_image"]),
            "unet_passes": {"forward": unet_per_pass * (int(n_iterations) + 1),
                            "backward": unet_per_pass * int(n_iterations)},
            "vae_passes": {"forward": int(n_iterations) + 1, "backward": int(n_iterations)},
            "ddim_steps": n_steps, "decoded": structure, "optimize": tuple(optimize), "through": through,
            "n_iterations": int(n_iterations), "lr": lr, "loss_kind": loss}
    images = {"X_zc": stage1, "stage 2 start": arrays["before"], "stage 2": arrays["after"]}
    return ids, images, info


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


def _per_image(models, seen, images):
    from brainldm.evaluate.metrics import pixcorr, ssim
    from brainldm.features.stimulus import resize_images

    out = {}
    for name, gen in images.items():
        gen = resize_images(gen, seen.shape[1]) if gen.shape[1:3] != seen.shape[1:3] else gen
        out[name] = {"CLIP cosine": clip_cosine(models, seen, gen), "SSIM": ssim(seen, gen),
                     "PixCorr": pixcorr(seen, gen)}
    return out


def stage2_scores(models, seen, images, **groups):
    """CLIP cosine, SSIM and PixCorr of each set of images, with 95% bootstrap CIs over images.

    Parameters
    ----------
    models : ModelSet
    seen : uint8 array of shape (n, H, W, 3)
    images : dict of str to uint8 array (n, h, w, 3)
        E.g. the ``images`` of :func:`minddiffuser_reconstructions`.
    **groups
        Constant columns.

    Returns
    -------
    table : pandas DataFrame
        One row per (images, metric).
    per_image : dict of str to dict of str to array (n,)
    """
    import pandas as pd

    from brainldm.evaluate.metrics import score_table

    per_image = _per_image(models, seen, images)
    tables = [score_table(scores, images=name, **groups) for name, scores in per_image.items()]
    return pd.concat(tables, ignore_index=True).drop(columns="chance"), per_image


def paired_differences(per_image, after, before, **groups):
    """Mean per-image change ``after - before`` of every metric, with a 95% bootstrap CI.

    Parameters
    ----------
    per_image : dict
        As :func:`stage2_scores` returns it.
    after, before : str
        Keys of ``per_image``.

    Returns
    -------
    table : pandas DataFrame
        ``metric``, ``change``, ``ci_low``, ``ci_high``, ``improved`` (the fraction of images
        whose score rose).
    """
    import pandas as pd

    from brainldm.evaluate.metrics import bootstrap_ci

    rows = []
    for metric in per_image[after]:
        delta = np.asarray(per_image[after][metric]) - np.asarray(per_image[before][metric])
        mean, low, high = bootstrap_ci(delta)
        rows.append({**groups, "metric": metric, "change": mean, "ci_low": low, "ci_high": high,
                     "improved": float(np.mean(delta > 0))})
    return pd.DataFrame(rows)
