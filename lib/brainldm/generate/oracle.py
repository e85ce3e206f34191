"""The oracle of reconstruction (world only): what a perfect decoder would give.

The generative model itself bounds the reconstructions: :func:`oracle_reconstructions`
reconstructs the test images from their true ``z`` and ``c`` (what a decoder with r = 1 would
hand the sampler), with the same sampler, settings and seeds as the brain's reconstructions
(:func:`brainldm.generate.reconstruction.brain_reconstructions`), and
:func:`reconstructions_against_oracle` scores both with the same identification.
"""
from dataclasses import dataclass

import pandas as pd
import torch

from brainldm.data.cache import array_digest, cached_arrays
from brainldm.evaluate.metrics import IDENTIFICATION_COLUMNS, evaluate_reconstructions
from brainldm.evaluate.truth import require_truth
from brainldm.features.stimulus import feature_shape, stimulus_features
from brainldm.generate.reconstruction import Reconstruction, brain_reconstructions, reconstruct
from brainldm.models.ldm import sampler_settings

__all__ = ["oracle_reconstructions", "OracleComparison", "reconstructions_against_oracle"]

_VERSION = "1"


def oracle_reconstructions(ds, models, settings=None, n_images=None):
    """Reconstructions of the test images from their *true* ``z`` and ``c`` (cached).

    The same sampler, settings and seeds as :func:`brainldm.generate.reconstruction.brain_reconstructions`
    (and, like it, at the models' generation resolution unless ``settings.size`` says otherwise): the
    gap between these and the brain's reconstructions is what decoding loses.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    settings : brainldm.models.ldm.SamplerSettings, optional
        Default: the dataset's reconstruction settings (:func:`brainldm.models.ldm.sampler_settings`).
    n_images : int, optional
        Reconstruct the first ``n_images`` test images (all by default).

    Returns
    -------
    ids : int array of shape (n,)
    result : Reconstruction
        ``X_z``, ``X_c``, ``X_zc``.
    """
    settings = settings or sampler_settings(ds.name)
    if settings.size is None:
        settings = settings.replace(size=models.generation_resolution)
    ids = ds.image_ids("test")
    ids = ids if n_images is None else ids[:int(n_images)]
    z = stimulus_features(ds, models, "z", ids).reshape((-1,) + tuple(feature_shape(models, "z")))
    c = stimulus_features(ds, models, "c", ids).reshape((-1,) + tuple(feature_shape(models, "c")))
    params = {"model": models.cache_token, "inputs": array_digest(z, c), **settings.as_dict()}
    arrays = cached_arrays("reconstructions", params, _VERSION, lambda: dict(reconstruct(
        models.ldm, torch.from_numpy(z), torch.from_numpy(c), models.uncond, settings)))
    return ids, Reconstruction(arrays)


@dataclass
class OracleComparison:
    """The brain's reconstructions beside the oracle's (what :func:`reconstructions_against_oracle` returns).

    Attributes
    ----------
    identification : pandas DataFrame
        Mean two-way identification, index (``subject``, ``method``), one column per Table 1
        column: the oracle's ``X_z`` (``z-only``) and ``X_zc`` (``zc``), then each subject's ``X_zc``.
    panels : dict of str to uint8 array of shape (n_shown, H, W, 3)
        Rows of a figure: the seen images, the oracle's ``X_z`` and ``X_zc`` and the first
        subject's ``X_zc`` (first samples).
    """

    identification: pd.DataFrame
    panels: dict

    def share(self):
        """The share of the oracle's margin over chance (0.5) that the brain's ``X_zc`` reaches, mean of subjects."""
        brain = self.identification.xs("zc", level="method").drop(index="oracle").mean()
        return ((brain - 0.5) / (self.identification.loc[("oracle", "zc")] - 0.5)).rename("share of the oracle")


def reconstructions_against_oracle(ds, models, subjects, settings=None, n_images=None, n_shown=6):
    """Two-way identification of the brain's reconstructions and of the oracle's, on the same test images.

    The test images are shared by every subject, and so is the oracle: one reconstruction of
    each test image from its own ``z`` and ``c`` (:func:`oracle_reconstructions`).

    Parameters
    ----------
    ds : WorldDataset
        Its subject's reconstructions are shown; ``subjects`` are made with the same options.
    models : ModelSet
    subjects : sequence of str
        Whose reconstructions are scored.
    settings : brainldm.models.ldm.SamplerSettings, optional
    n_images : int, optional
        The first test images (all by default).
    n_shown : int
        Images in :attr:`OracleComparison.panels`.

    Returns
    -------
    comparison : OracleComparison
    """
    require_truth(ds)
    ids, oracle = oracle_reconstructions(ds, models, settings, n_images=n_images)
    tables = [evaluate_reconstructions(models, ds.images(ids), oracle, methods={"z-only": "X_z", "zc": "X_zc"},
                                       subject="oracle")]
    for name in subjects:
        other = ds.with_subject(name)
        brain_ids, recon, _ = brain_reconstructions(other, models, settings, n_images=n_images)
        tables.append(evaluate_reconstructions(models, other.images(brain_ids), recon, methods={"zc": "X_zc"},
                                               subject=name))
    scores = pd.concat(tables, ignore_index=True)
    columns = list(IDENTIFICATION_COLUMNS)
    rows = scores[scores["metric"].isin(columns)]
    wide = rows.pivot_table(index=["subject", "method"], columns="metric", values="mean", sort=False)[columns]
    shown = slice(int(n_shown))
    _, own, _ = brain_reconstructions(ds, models, settings, n_images=n_images)
    panels = {"seen": ds.images(ids[shown]), "oracle X_z": oracle["X_z"][shown],
              "oracle X_zc": oracle["X_zc"][shown, 0], f"{ds.subject} X_zc": own["X_zc"][shown, 0]}
    return OracleComparison(wide, panels)
