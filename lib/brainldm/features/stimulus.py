"""Stimulus features of the LDM, computed once per dataset, subject, split and model, and cached.

* ``z`` — the VAE latent of the stimulus resized to the model set's resolution
  (Takagi resizes NSD images to 320 px: a 4 × 40 × 40 latent with SD 1.4);
* ``c`` — the text embedding of the image's captions, averaged over captions.

Features are returned flattened, one row per image, in the order of the ids
asked for; :meth:`brainldm.models.loading.ModelSet.latent_shape` and ``c_shape`` give
back their shapes.
"""

import numpy as np
import torch

from brainldm.data.cache import cache_key, cached_arrays
from brainldm.errors import check_choice
from brainldm.models.ldm import resize

__all__ = ["FEATURES", "CAPTION_IMAGES_PER_CALL", "stimulus_features", "resize_images", "feature_shape"]

FEATURES = ("z", "c")
_VERSION = "1"
# Images whose captions are embedded per call when computing ``c``: a text encoder embeds each
# distinct caption of a call once, and world captions repeat across images (2,000 images have
# 4,140 distinct captions of 10,000), so 1,024 images per call embed the world's ``c`` 1.9x faster
# than 64, with the same bytes (every caption is padded to the same length). A call's ``c`` is
# 1,024 x 77 x 768 float32 (242 MB) with SD's CLIP; the world's 1,024 x 5 captions x 32 x 384 (252 MB).
CAPTION_IMAGES_PER_CALL = 1024


def resize_images(images, size):
    """Resize images or float maps held in numpy arrays (:func:`brainldm.models.ldm.resize`).

    Parameters
    ----------
    images : array of shape (n, H, W, channels) or (n, H, W)
        uint8 images (rounded and clipped back to uint8) or float maps (e.g. luminance).
    size : int or (height, width)
        An int makes square images.

    Returns
    -------
    resized : array of shape (n, height, width[, channels]), of the input's dtype (floats as float32)
    """
    images = np.asarray(images)
    height, width = (size, size) if np.ndim(size) == 0 else size
    if images.shape[1:3] == (height, width):
        return images
    pixels = torch.from_numpy(np.ascontiguousarray(images if images.ndim == 4 else images[..., None]))
    pixels = resize(pixels.permute(0, 3, 1, 2).float(), (height, width))
    if images.dtype == np.uint8:
        pixels = pixels.round().clamp(0, 255).to(torch.uint8)
    out = pixels.permute(0, 2, 3, 1).numpy()
    return out if images.ndim == 4 else out[..., 0]


def feature_shape(models, feature):
    """The unflattened shape of one image's ``feature``."""
    check_choice("feature", feature, FEATURES)
    return models.latent_shape() if feature == "z" else models.c_shape()


def _compute(ds, models, feature, ids, batch_size):
    out = []
    step = batch_size if feature == "z" else max(batch_size, CAPTION_IMAGES_PER_CALL)
    for start in range(0, len(ids), step):
        part = ids[start:start + step]
        if feature == "z":
            values = models.ldm.encode(resize_images(ds.images(part), models.resolution))
        else:
            values = models.text_encoder.encode_captions(ds.captions(part))
        out.append(values.flatten(1).float().numpy())
    return {"features": np.concatenate(out) if out else np.zeros((0, int(np.prod(feature_shape(models, feature))))),
            "ids": np.asarray(ids)}


def stimulus_features(ds, models, feature, ids, batch_size=64):
    """Flattened ``feature`` of the images ``ids`` of dataset ``ds``: float32 (n, d), cached.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    feature : {"z", "c"}
    ids : int array of shape (n,)
    batch_size : int
        Images encoded at once by the VAE (``z``); captions go :data:`CAPTION_IMAGES_PER_CALL` images at a time.
    """
    check_choice("feature", feature, FEATURES)
    ids = np.asarray(ids, dtype=np.int64)
    uniq, inverse = np.unique(ids, return_inverse=True)
    params = {"dataset": ds.name, "stimuli": ds.cache_token, "model": models.cache_token,
              "feature": feature, "resolution": models.resolution, "ids": cache_key("ids", uniq.tolist(), "")}
    arrays = cached_arrays("features", params, _VERSION, lambda: _compute(ds, models, feature, uniq, batch_size))
    return arrays["features"][inverse]
