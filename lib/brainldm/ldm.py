"""Latent diffusion sampling: encode, decode, img2img and text2img with any VAE, U-Net and scheduler.

The sampler reads every shape from the models' configs, so the same code drives
the embedded world models and Stable Diffusion's components on NSD.
"""

import numpy as np
import torch

__all__ = ["images_to_tensor", "tensor_to_images", "prepare_depth"]


def images_to_tensor(images):
    """Convert uint8 images to a float tensor in [-1, 1].

    Parameters
    ----------
    images : uint8 array of shape (n, H, W, 3)

    Returns
    -------
    pixels : float32 tensor of shape (n, 3, H, W)
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (n, H, W, 3), found {images.dtype} "
                         f"{images.shape}; convert with np.asarray(images, np.uint8)")
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def tensor_to_images(pixels):
    """Convert a float tensor in [-1, 1] of shape (n, 3, H, W) to uint8 images (n, H, W, 3)."""
    pixels = pixels.detach().float().clamp(-1, 1).add(1).mul(127.5).round()
    return pixels.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()


def prepare_depth(depth, size):
    """Resize depth maps to the latent grid and scale each to [-1, 1], as SD 2 depth does.

    Parameters
    ----------
    depth : float array or tensor of shape (n, H, W)
    size : tuple of int
        The latent grid ``(h, w)``.

    Returns
    -------
    depth : float32 tensor of shape (n, 1, h, w)
    """
    depth = torch.as_tensor(np.asarray(depth, np.float32) if not torch.is_tensor(depth) else depth)
    if depth.ndim != 3:
        raise ValueError(f"expected depth maps of shape (n, H, W), found {tuple(depth.shape)}")
    depth = torch.nn.functional.interpolate(depth.float()[:, None], size=tuple(size),
                                            mode="bilinear", antialias=True, align_corners=False)
    low = depth.amin(dim=(1, 2, 3), keepdim=True)
    high = depth.amax(dim=(1, 2, 3), keepdim=True)
    return 2.0 * (depth - low) / (high - low).clamp_min(1e-6) - 1.0
