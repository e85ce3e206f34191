"""A feature network's layers, pooled on a coarse grid: what ``+G`` and MindDiffuser decode and match.

``+G`` (:mod:`brainldm.generate.structural`) decodes a CNN's early, middle and late layers
and MindDiffuser's stage 2 (:mod:`brainldm.generate.minddiffuser`) the image encoder's early
and middle ones; both then optimise an image so that *its* layers match the decoded ones.
Both read the layers with :func:`pooled_layers`, differentiably: a convolutional map, or a
ViT's patch tokens laid on their grid, averaged to ``pool`` × ``pool`` positions (decoding
every unit of a large layer is what makes the originals expensive, and the grid keeps where
things are). :func:`feature_net_token` names a network's weights in cache keys.
"""

import numpy as np
import torch
import torch.nn.functional as F

from brainldm.data.cache import array_digest
from brainldm.errors import BrainLDMError
from brainldm.models.ldm import resize

__all__ = ["pooled_layers", "layer_slices", "feature_net_token"]


def _as_map(act):
    """A layer's activations as a map (n, channels, g, g): ViT tokens (class token first) are laid on their grid.

    Returns None for activations without a spatial layout (a vector per image).
    """
    if act.ndim == 4:
        return act
    if act.ndim == 3:
        tokens = act.shape[1]
        for drop in (1, 0):  # with and without a class token
            side = int(round((tokens - drop) ** 0.5))
            if side * side == tokens - drop and side > 0:
                return act[:, drop:].transpose(1, 2).reshape(act.shape[0], act.shape[2], side, side)
    return None


def pooled_layers(net, pixels, layers, pool=None):
    """A feature net's layers of pixels, spatial maps averaged to ``pool`` × ``pool``, differentiably.

    Parameters
    ----------
    net : brainldm.models.loading.FeatureNet
    pixels : float tensor of shape (n, 3, H, W) in [-1, 1]
        Resized to ``net.input_size`` first.
    layers : tuple of str
        Layers of ``net``.
    pool : int, optional
        Grid of the spatial layers: a convolutional map, or a ViT's patch tokens laid on their
        grid, is averaged to ``pool`` × ``pool`` positions when it is larger; None keeps every unit.

    Returns
    -------
    features : dict of str to float32 tensor of shape (n, d_layer), on the net's device
    """
    pixels = resize(pixels, net.input_size)
    acts = net.forward(pixels)
    missing = [layer for layer in layers if layer not in acts]
    if missing:
        raise BrainLDMError(f"the {net.name} has no layer {', '.join(map(repr, missing))}; it has "
                            f"{', '.join(map(repr, acts))}")
    out = {}
    for layer in layers:
        act = acts[layer].float()
        grid = _as_map(act) if pool else None
        if grid is not None and grid.shape[-1] > int(pool):
            act = F.adaptive_avg_pool2d(grid, int(pool))
        out[layer] = act.flatten(1)
    return out


def layer_slices(net, layers, pool=None):
    """Where each layer of :func:`pooled_layers` sits in their concatenation: dict of str to slice."""
    with torch.no_grad():
        probe = pooled_layers(net, torch.zeros(1, 3, net.input_size, net.input_size), layers, pool)
    slices, start = {}, 0
    for layer in layers:
        slices[layer] = slice(start, start + probe[layer].shape[1])
        start += probe[layer].shape[1]
    return slices


def feature_net_token(net):
    """A short digest of a feature network's outputs on a fixed probe image: changes when its weights do."""
    probe = np.random.default_rng(0).integers(0, 256, (2, net.input_size, net.input_size, 3), dtype=np.uint8)
    return array_digest(*[np.round(v, 4) for v in net(probe).values()])
