"""Statistics shared by every chapter: repeat averaging and noise ceilings."""

import numpy as np
import pandas as pd
from scipy import sparse

from brainldm.data.anatomy import STREAMS
from brainldm.errors import ParameterError

__all__ = ["average_repeats", "ncsnr_from_repeats", "noise_ceiling", "noise_ceiling_table", "mean_sd"]


def average_repeats(betas, ids):
    """Average the rows of ``betas`` that share an image id.

    Parameters
    ----------
    betas : array of shape (n_trials, n_voxels)
    ids : array of shape (n_trials,)

    Returns
    -------
    means : float32 array of shape (n_images, n_voxels)
        One row per unique id, in sorted id order.
    uniq : array of shape (n_images,)
    """
    uniq, inverse = np.unique(ids, return_inverse=True)
    counts = np.bincount(inverse, minlength=uniq.size)
    weights = sparse.csr_matrix((1.0 / counts[inverse], (inverse, np.arange(inverse.size))),
                                shape=(uniq.size, inverse.size), dtype=np.float32)
    return np.asarray(weights @ np.asarray(betas, dtype=np.float32), dtype=np.float32), uniq


def ncsnr_from_repeats(betas, ids):
    """Noise-ceiling signal-to-noise ratio of every voxel, estimated from repeated images.

    As in the NSD paper (Allen et al. 2022): the noise variance is the pooled
    variance across an image's repeats; the signal variance is what remains of
    the total variance; ``ncsnr = sigma_signal / sigma_noise``.

    Parameters
    ----------
    betas : array of shape (n_trials, n_voxels)
        Single-trial responses.
    ids : array of shape (n_trials,)
        The image shown on each trial; images shown once are left out.

    Returns
    -------
    ncsnr : array of shape (n_voxels,)
    """
    ids = np.asarray(ids)
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    keep = counts[inverse] >= 2
    if not keep.any():
        raise ParameterError("the noise ceiling needs images shown at least twice; every image was shown once "
                             "(use a dataset with repeats, e.g. the world's dataset_options n_repeats >= 2)")
    betas = np.asarray(betas, dtype=np.float32)[keep]
    means, uniq = average_repeats(betas, ids[keep])
    resid = betas - means[np.searchsorted(uniq, ids[keep])]
    noise_var = (resid.astype(np.float64) ** 2).sum(0) / (betas.shape[0] - uniq.size)
    signal_var = np.clip(betas.var(0, ddof=1, dtype=np.float64) - noise_var, 0, None)
    return np.sqrt(signal_var / np.maximum(noise_var, 1e-12))


def noise_ceiling(ncsnr, n_average=1):
    """Noise ceiling (% of variance explainable) of responses averaged over ``n_average`` trials.

    ``NC = 100 * ncsnr**2 / (ncsnr**2 + 1 / n_average)`` (Allen et al. 2022).
    """
    ncsnr = np.asarray(ncsnr, dtype=np.float64)
    return 100.0 * ncsnr ** 2 / (ncsnr ** 2 + 1.0 / n_average)


def noise_ceiling_table(datasets, rois=None, split="test"):
    """Noise ceilings of repeat-averaged responses, per subject and ROI.

    Parameters
    ----------
    datasets : list of Dataset
    rois : list of str, optional
        Default: NSD's ``streams`` labels (``early`` ... ``parietal``) that each dataset has.
    split : {"train", "test"}
        Whose repeats estimate the noise.

    Returns
    -------
    table : pandas DataFrame
        One row per (subject, roi): ``n_voxels``, the median noise ceiling (%)
        and its 25th and 75th percentiles; for simulated datasets (with a
        ``ground_truth``), ``true_median`` from the simulated ncsnr.
    """
    rows = []
    for ds in datasets:
        n_average = np.unique(ds.betas(split)[1], return_counts=True)[1].mean()
        for roi in [r for r in STREAMS if r in ds.roi_names] if rois is None else rois:
            nc = ds.noise_ceiling(split, roi=roi, n_average=n_average)
            row = {"subject": ds.subject, "roi": roi, "n_voxels": nc.size, "median": np.median(nc),
                   "q25": np.percentile(nc, 25), "q75": np.percentile(nc, 75)}
            if ds.has_ground_truth:
                true = noise_ceiling(ds.ground_truth["ncsnr"][ds.roi_mask(roi)], n_average)
                row["true_median"] = np.median(true)
            rows.append(row)
    return pd.DataFrame(rows)


def mean_sd(mean, sd, digits=3):
    """``"mean ± s.d."`` as papers print it; the s.d. of a single value (NaN) is shown as ``–``."""
    spread = f"{sd:.{digits}f}" if np.isfinite(sd) else "–"
    return f"{mean:.{digits}f} ± {spread}"
