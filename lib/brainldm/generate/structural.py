"""``+G``: structural reconstruction through a generator prior (technical report, section 2.2).

The report decodes, from fMRI, the features several layers of a CNN give the seen
image, finds an image whose features match them by optimising the input of a
generator (Shen et al. 2019's "deep image reconstruction" with a GAN generator), and
gives that image to img2img in place of ``X_z``.

Here the generator is the latent diffusion model's own VAE decoder (the world has
no GAN, and no GAN is in the NSD registry): the latent ``z`` is optimised with Adam,
starting from the decoded ``z``, so that the CNN features of ``decode(z)`` match
the decoded ones,

.. math:: L(z) = \\sum_l w_l \\, \\lVert f_l(\\mathrm{decode}(z)) - \\hat f_l \\rVert^2
          / \\lVert \\hat f_l \\rVert^2 ,

and the images of the optimised latents are the ``+G`` images. Spatial layers are
averaged on a ``pool`` × ``pool`` grid first (decoding every unit of a large
convolutional layer is what makes the original expensive). Each image's loss and
gradient depend only on its own latent, so all test images are optimised at once.
"""

import time

import numpy as np
import torch
import torch.nn.functional as F

from brainldm.errors import BrainLDMError
from brainldm.generate.optimise import optimise_inputs

__all__ = ["pooled_layers", "structure_loss", "optimise_latents", "LAYERS"]

#: the feature net's layers matched by default (early, middle, late, as in Table 1's columns)
LAYERS = ("early", "middle", "late")


def pooled_layers(net, pixels, layers=LAYERS, pool=None):
    """A feature net's layers of pixels, spatial maps averaged to ``pool`` × ``pool``, differentiably.

    Parameters
    ----------
    net : brainldm.models.loading.FeatureNet
    pixels : float tensor of shape (n, 3, H, W) in [-1, 1]
        Resized to ``net.input_size`` first.
    layers : tuple of str
    pool : int, optional
        Grid of spatial layers (no pooling if None or if a map is already that small).

    Returns
    -------
    features : dict of str to float32 tensor of shape (n, d_layer), on the net's device
    """
    if pixels.shape[-1] != net.input_size or pixels.shape[-2] != net.input_size:
        pixels = F.interpolate(pixels, size=(net.input_size, net.input_size), mode="bilinear", antialias=True,
                               align_corners=False)
    acts = net.forward(pixels)
    missing = set(layers) - set(acts)
    if missing:
        raise BrainLDMError(f"{net.name} has no layer {sorted(missing)}; it has {sorted(acts)}")
    out = {}
    for layer in layers:
        act = acts[layer].float()
        if pool and act.ndim == 4 and act.shape[-1] > pool:
            act = F.adaptive_avg_pool2d(act, pool)
        out[layer] = act.flatten(1)
    return out


def structure_loss(features, targets, weights):
    """Per-image loss ``sum_l w_l |f_l - t_l|^2 / |t_l|^2``: tensor of shape (n,)."""
    total = 0.0
    for layer, weight in weights.items():
        if weight:
            target = targets[layer].to(features[layer].device)
            total = total + weight * ((features[layer] - target) ** 2).sum(1) / (target ** 2).sum(1).clamp_min(1e-8)
    return total


def optimise_latents(ldm, net, z0, targets, weights=None, pool=None, iterations=5, lr=0.1, batch_size=None,
                     progress=True):
    """Optimise latents so that the feature net's layers of their images match ``targets``.

    Parameters
    ----------
    ldm : brainldm.models.ldm.LatentDiffusion
        Its VAE decoder is the generator.
    net : brainldm.models.loading.FeatureNet
    z0 : float tensor of shape (n, latent_channels, h, w)
        Starting latents (scaled as :meth:`LatentDiffusion.encode` scales them), e.g. decoded ``z``.
    targets : dict of str to array of shape (n, d_layer)
        Decoded features of each layer, pooled as ``pool`` says.
    weights : dict of str to float, optional
        Weight of each layer (default 1 for each layer of ``targets``).
    pool : int, optional
        See :func:`pooled_layers`.
    iterations : int
        Adam steps (Shen et al. run 200 with their GAN).
    lr : float
        Adam's learning rate.
    batch_size : int, optional
        Images optimised together (all by default; the result does not depend on it).
    progress : bool

    Returns
    -------
    z : float32 tensor of shape (n, latent_channels, h, w)
    loss : float array of shape (iterations + 1, n)
        Each image's loss before every step and after the last.
    seconds : float
        Wall time of the optimisation.
    """
    weights = {layer: 1.0 for layer in targets} if weights is None else dict(weights)
    unknown = set(weights) - set(targets)
    if unknown:
        raise BrainLDMError(f"layer weights name {sorted(unknown)} but decoded targets exist only for "
                            f"{sorted(targets)}")
    layers = tuple(layer for layer, w in weights.items() if w)
    device = ldm.device
    targets = {layer: torch.as_tensor(np.asarray(targets[layer], np.float32), device=device) for layer in layers}
    z0 = torch.as_tensor(z0, dtype=torch.float32).to(device)
    n = len(z0)
    batch_size = int(batch_size or max(n, 1))
    start = time.perf_counter()
    z_out, losses = [], []
    for first in range(0, n, batch_size):
        part = slice(first, first + batch_size)
        batch_targets = {k: v[part] for k, v in targets.items()}
        variables, history, _, _ = optimise_inputs(
            {"z": z0[part]}, lambda v: ldm.decode_pixels(v["z"], checkpoint=True),
            lambda pixels: structure_loss(pooled_layers(net, pixels, layers, pool), batch_targets, weights),
            iterations, lr, progress=progress, desc="+G optimisation")
        z_out.append(variables["z"].cpu())
        losses.append(history)
    seconds = time.perf_counter() - start
    return torch.cat(z_out), np.concatenate(losses, axis=1), seconds
