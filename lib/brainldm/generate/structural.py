"""``+G``: structural reconstruction through a generator prior (technical report, section 2.2).

The report decodes, from fMRI, the features several layers of a CNN give the seen
image, finds an image whose features match them by optimising the input of a
generator (Shen et al. 2019's "deep image reconstruction" with a GAN generator), and
gives that image to img2img in place of ``X_z``.

Here the generator is the latent diffusion model's own VAE decoder (the world has
no GAN, and no GAN is in the NSD registry): the latent ``z`` is optimised with Adam
(:func:`brainldm.generate.optimise.optimise_inputs`), starting from the decoded ``z``, so that
the CNN features of ``decode(z)`` match the decoded ones,

.. math:: L(z) = \\sum_l w_l \\, \\lVert f_l(\\mathrm{decode}(z)) - \\hat f_l \\rVert^2
          / \\lVert \\hat f_l \\rVert^2

(:func:`brainldm.generate.optimise.feature_loss`, ``"relative"``), and the images of the optimised
latents are the ``+G`` images. Spatial layers are averaged on a ``pool`` × ``pool`` grid first
(:func:`brainldm.features.layers.pooled_layers`; decoding every unit of a large convolutional
layer is what makes the original expensive). Each image's loss and gradient depend only on its
own latent, so all test images are optimised at once.
"""

import time

import numpy as np
import torch

from brainldm.errors import BrainLDMError
from brainldm.features.layers import pooled_layers
from brainldm.generate.optimise import feature_loss, optimise_inputs

__all__ = ["CNN_LAYERS", "optimise_latents"]

#: the feature net's layers ``+G`` matches by default (early, middle, late, as in Table 1's CNN columns)
CNN_LAYERS = ("early", "middle", "late")


def optimise_latents(ldm, net, z0, targets, weights=None, pool=None, iterations=5, lr=0.1):
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
        See :func:`brainldm.features.layers.pooled_layers`.
    iterations : int
        Adam steps (Shen et al. run 200 with their GAN).
    lr : float
        Adam's learning rate.

    Returns
    -------
    z : float32 tensor of shape (n, latent_channels, h, w), on the CPU
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
    targets = {layer: torch.as_tensor(np.asarray(targets[layer], np.float32), device=ldm.device) for layer in layers}
    start = time.perf_counter()
    variables, losses, _, _ = optimise_inputs(
        {"z": torch.as_tensor(z0, dtype=torch.float32).to(ldm.device)},
        lambda v: ldm.decode_pixels(v["z"], checkpoint=True),
        lambda pixels: feature_loss(pooled_layers(net, pixels, layers, pool), targets, weights),
        iterations, lr, desc="+G optimisation")
    return variables["z"].cpu(), losses, time.perf_counter() - start
