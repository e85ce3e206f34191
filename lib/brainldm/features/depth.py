"""``+D``: depth decoded from fMRI (Takagi & Nishimoto, technical report, section 2.3).

The report predicts, from fMRI, DPT-large's representation of the seen image (the
four backbone hidden states its neck reads), runs DPT's neck and head on the
prediction to get a depth map, and conditions Stable Diffusion 2 depth on it.

Both depth estimators sit behind one interface, a *depth model*:

``representation(images) -> (n, d)``
    What is decoded from fMRI, flattened.
``depth_from(representation) -> (n, h, w)``
    The depth map a (decoded) representation stands for.
``estimate(images) -> (n, h, w)``
    The estimator's depth map of an image.
``convention``
    ``"distance"`` (0 near, larger far: the world's depth maps and estimator) or
    ``"disparity"`` (inverse depth, larger near: DPT and SD 2 depth).

The world's estimator is a small U-Net whose skip connections carry the image
itself, so its compact representation is its output: :class:`WorldDepthModel`
decodes the estimated map on a coarse grid (the latent grid by default).

Conventions are converted in one place, :func:`convert_depth`; the
depth-conditioned model of a model set (:func:`depth_generator`) says which one it
was trained with (:data:`CONDITIONING_CONVENTION`).
"""

import numpy as np
import torch

from brainldm.errors import BrainLDMError, check_choice
from brainldm.features.stimulus import resize_images
from brainldm.models.ldm import images_to_tensor, to_module
from brainldm.models.loading import weights_digest
from brainldm.models.world.nets import DepthEstimator

__all__ = ["CONVENTIONS", "CONDITIONING_CONVENTION", "convert_depth", "WorldDepthModel", "DPTDepthModel",
           "depth_model", "depth_generator", "true_depth", "depth_correlation"]

CONVENTIONS = ("distance", "disparity")
#: the depth convention each depth-conditioned model was trained with, by ModelSet name
#: (the world U-Net on the world's distance maps; SD 2 depth on DPT's inverse depth)
CONDITIONING_CONVENTION = {"world": "distance", "stable-diffusion-2-depth": "disparity"}


def convert_depth(depth, source, target):
    """Express depth maps given in convention ``source`` in convention ``target``.

    Relative depth maps (the world's in [0, 1]; DPT's up to scale and shift) are only
    defined up to a monotonic map, and every consumer here (SD 2 depth's and the world
    U-Net's conditioning, :func:`depth_correlation`) rescales each map to its own
    range, so the conversion between distance and disparity is the order reversal
    ``-depth``: after min–max scaling the converted map is the mirror image of the
    original (``prepare_depth(convert_depth(d)) == -prepare_depth(d)``).

    Parameters
    ----------
    depth : array or tensor of shape (n, H, W)
    source, target : {"distance", "disparity"}

    Returns
    -------
    depth : same type and shape
    """
    check_choice("depth convention", source, CONVENTIONS)
    check_choice("depth convention", target, CONVENTIONS)
    return depth if source == target else -depth


class WorldDepthModel:
    """The world's depth estimator (the DPT analogue) as a depth model.

    Parameters
    ----------
    estimator : brainldm.models.world.nets.DepthEstimator
        Image → depth in [0, 1], 0 near.
    image_size : int
        The estimator's input size (the world's stimuli).
    grid : int
        The representation is the estimated map averaged on ``grid`` × ``grid`` cells.
    batch_size : int
    """

    name = "world depth estimator"
    convention = "distance"

    def __init__(self, estimator, image_size, grid, batch_size=256):
        self.estimator, self.image_size, self.grid = estimator, int(image_size), int(grid)
        self.batch_size = int(batch_size)

    @property
    def cache_token(self):
        return f"world-depth-{weights_digest(self.estimator)}-{self.image_size}-{self.grid}"

    @property
    def feature_shape(self):
        return (self.grid, self.grid)

    @torch.no_grad()
    def estimate(self, images):
        """Depth maps of uint8 images (n, H, W, 3): float32 (n, image_size, image_size), 0 near."""
        out = [self.estimator(to_module(images_to_tensor(resize_images(images[i:i + self.batch_size],
                                                                        self.image_size)), self.estimator)
                              ).float().cpu() for i in range(0, len(images), self.batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.image_size, self.image_size), np.float32)

    def representation(self, images):
        """The estimated maps averaged on the ``grid`` × ``grid`` cells, flattened: float32 (n, grid * grid)."""
        maps = torch.from_numpy(self.estimate(images))[:, None]
        return torch.nn.functional.adaptive_avg_pool2d(maps, self.grid).flatten(1).numpy()

    def depth_from(self, representation):
        """Depth maps (n, grid, grid) of (decoded) representations (n, grid * grid)."""
        return np.asarray(representation, np.float32).reshape((-1,) + self.feature_shape)


class DPTDepthModel:
    """DPT as a depth model: the representation is the backbone hidden states its neck reads.

    Parameters
    ----------
    model : transformers.DPTForDepthEstimation
    processor : transformers.DPTImageProcessor
    grid : int, optional
        Decode DPT's estimated map averaged on ``grid`` × ``grid`` cells instead of its
        hidden states (the report's choice, about 2.4 million values per image with
        DPT-large: too many to fit on most machines).
    batch_size : int
    """

    name = "DPT"
    convention = "disparity"

    def __init__(self, model, processor, grid=None, batch_size=8):
        self.model, self.processor, self.batch_size = model, processor, int(batch_size)
        self.grid = None if grid is None else int(grid)
        if model.config.is_hybrid or getattr(model, "backbone", None) is not None:
            raise BrainLDMError("only the ViT DPT (e.g. Intel/dpt-large) is supported, not hybrid or "
                                "backbone-based DPT models")

    @property
    def cache_token(self):
        return f"dpt-{weights_digest(self.model)}-{self.grid}"

    @property
    def feature_shape(self):
        """``(layers, tokens, hidden)`` of the hidden states DPT's neck reads (from the config), or the grid."""
        if self.grid:
            return (self.grid, self.grid)
        config = self.model.config
        tokens = (config.image_size // config.patch_size) ** 2 + 1
        return (len(config.backbone_out_indices), tokens, config.hidden_size)

    def _pixels(self, images):
        pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
        return pixels.to(self.model.device, self.model.dtype)

    @torch.no_grad()
    def representation(self, images):
        """Hidden states of ``backbone_out_indices`` (n, layers * tokens * hidden), or the gridded estimate."""
        if self.grid:
            maps = torch.from_numpy(self.estimate(images))[:, None]
            return torch.nn.functional.adaptive_avg_pool2d(maps, self.grid).flatten(1).numpy()
        out = []
        for start in range(0, len(images), self.batch_size):
            hidden = self.model.dpt(self._pixels(images[start:start + self.batch_size]),
                                    output_hidden_states=True).hidden_states[1:]
            kept = [hidden[i] for i in self.model.config.backbone_out_indices]
            out.append(torch.stack(kept, 1).flatten(1).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, int(np.prod(self.feature_shape))), np.float32)

    @torch.no_grad()
    def depth_from(self, representation):
        """DPT's neck and head on (decoded) hidden states (or the gridded maps): disparity maps (n, h, w)."""
        rep = torch.as_tensor(np.asarray(representation, np.float32)).reshape((-1,) + self.feature_shape)
        if self.grid:
            return rep.numpy()
        out = []
        for start in range(0, len(rep), self.batch_size):
            part = rep[start:start + self.batch_size].to(self.model.device, self.model.dtype)
            hidden = self.model.neck([part[:, k] for k in range(part.shape[1])])
            out.append(self.model.head(hidden).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, 1, 1), np.float32)

    @torch.no_grad()
    def estimate(self, images):
        """DPT's disparity maps of uint8 images (n, h, w)."""
        out = [self.model(pixel_values=self._pixels(images[i:i + self.batch_size])).predicted_depth.float().cpu()
               for i in range(0, len(images), self.batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, 1, 1), np.float32)


def depth_model(models, grid=None):
    """The depth model of a :class:`brainldm.models.loading.ModelSet`.

    World: :class:`WorldDepthModel` with a ``grid`` × ``grid`` representation (default
    the latent grid); NSD: :class:`DPTDepthModel` of DPT-large (loaded on first use), whose
    representation is its hidden states, or its map on a ``grid`` if given.
    """
    estimator = models.extras["depth_estimator"]
    if isinstance(estimator, DepthEstimator):
        grid = grid or models.resolution // models.ldm.vae_scale_factor
        return WorldDepthModel(estimator, models.resolution, grid)
    if isinstance(estimator, tuple) and len(estimator) == 2:
        return DPTDepthModel(*estimator, grid=grid)
    raise BrainLDMError(f"models.extras['depth_estimator'] is a {type(estimator).__name__}; expected the world "
                        "DepthEstimator or a (DPTForDepthEstimation, DPTImageProcessor) pair")


def depth_generator(models):
    """The depth-conditioned model set: ``models`` itself if its U-Net takes depth (the world),
    else ``models.extras["depth_ldm"]`` (SD 2 depth on NSD, loaded on first use)."""
    generator = models if models.ldm.takes_depth else models.extras["depth_ldm"]
    if not generator.ldm.takes_depth:
        raise BrainLDMError(f"{generator.name}'s U-Net has no depth input channel; +D needs one")
    check_choice("depth-conditioned model", generator.name, CONDITIONING_CONVENTION)
    return generator


def true_depth(ds, model, ids):
    """Depth maps of the seen images in ``model.convention``: (n, H, W).

    The dataset's own depth maps where it has them (``ds.has_true_depth``: the world's,
    converted from distance); else the estimator's maps of the seen images (NSD, as in the report).
    """
    if ds.has_true_depth:
        return convert_depth(np.asarray(ds.depth(ids), np.float32), "distance", model.convention)
    return model.estimate(ds.images(ids))


def depth_correlation(depth, reference, size=None):
    """Pearson correlation of each depth map with its reference, on a common grid.

    Parameters
    ----------
    depth, reference : arrays of shape (n, h, w) and (n, H, W), in the same convention
    size : int, optional
        Both are resized to ``size`` × ``size`` (default the smaller of the two).

    Returns
    -------
    r : array of shape (n,)
    """
    size = size or min(np.shape(depth)[-1], np.shape(reference)[-1])
    a = resize_images(np.asarray(depth, np.float32), size).reshape(len(depth), -1).astype(np.float64)
    b = resize_images(np.asarray(reference, np.float32), size).reshape(len(reference), -1).astype(np.float64)
    a -= a.mean(1, keepdims=True)
    b -= b.mean(1, keepdims=True)
    norm = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.where(norm > 0, norm, 1.0)
