"""Metrics that compare reconstructions with the images that were seen.

Two-way identification (Takagi & Nishimoto 2023, seed 002 Table 1): for each
image, the fraction of the other images' reconstructions that correlate less
with it, in some network's feature space, than its own reconstruction does.
Chance is 0.5. The original code loops over all pairs in Python; here it is one
matrix product.
"""

import numpy as np

__all__ = ["two_way_identification", "psnr"]


def _standardise(x, axis=-1):
    x = np.asarray(x, np.float64)
    x = x - x.mean(axis=axis, keepdims=True)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def two_way_identification(orig, gen):
    """Two-way identification accuracy of each image.

    Parameters
    ----------
    orig : array of shape (n, d)
        Features of the images that were seen.
    gen : array of shape (n, s, d) or (n, d)
        Features of ``s`` reconstructions of each image.

    Returns
    -------
    accuracy : array of shape (n,)
        For image i, the fraction of pairs (j ≠ i, sample k) with
        ``corr(orig_i, gen_ik) > corr(orig_i, gen_jk)`` (ties count one half),
        averaged over the samples k. Chance is 0.5.
    """
    orig = np.asarray(orig)
    gen = np.asarray(gen)
    if gen.ndim == 2:
        gen = gen[:, None]
    if orig.ndim != 2 or gen.ndim != 3 or gen.shape[0] != orig.shape[0] or gen.shape[2] != orig.shape[1]:
        raise ValueError(f"expected orig (n, d) and gen (n, s, d) with the same n and d, found "
                         f"{orig.shape} and {gen.shape}")
    n = orig.shape[0]
    if n < 2:
        raise ValueError(f"two-way identification needs at least 2 images, found {n}")
    # r[k, i, j] = corr(orig_i, gen_jk)
    r = np.einsum("id,jkd->kij", _standardise(orig), _standardise(gen))
    own = np.diagonal(r, axis1=1, axis2=2)[:, :, None]  # (s, n, 1): corr(orig_i, gen_ik)
    wins = (own > r) + 0.5 * (own == r)
    wins = wins.sum(axis=2) - 0.5  # drop j == i, a tie with itself
    return wins.mean(axis=0) / (n - 1)


def psnr(images, reference, data_range=255.0):
    """Peak signal-to-noise ratio of each image, in dB.

    Parameters
    ----------
    images, reference : arrays of shape (n, ...)
    data_range : float
        255 for uint8 images.

    Returns
    -------
    psnr : array of shape (n,)
        Infinite where an image equals its reference.
    """
    a = np.asarray(images, np.float64)
    b = np.asarray(reference, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images and reference must have the same shape, found {a.shape} and {b.shape}")
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)
