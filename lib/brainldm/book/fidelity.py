"""What the authors' protocol hides: the same reconstructions scored, or drawn, the authors' way and ours.

Two choices of Takagi & Nishimoto's code (:mod:`brainldm.fit.protocol`) can move identification
without any change to the decoders:

* **shared noise**: every image is reconstructed in its own process seeded with 42, so sample
  k of every image starts from the same noise. Two-way identification compares an image's
  reconstruction with the other images' reconstructions; when those share their noise, what
  the noise puts into every image cancels out of the comparison.
* **how samples are counted**: the authors average the correlations over the 5 samples before
  counting wins; per-sample counting, and picking each image's best sample, are the other
  natural readings of "identification with 5 samples".

:func:`protocol_effects` measures both on one subject, with paired bootstrap CIs over images.
"""

import dataclasses

import numpy as np
import pandas as pd

from brainldm.evaluate.metrics import IDENTIFICATION_COLUMNS, bootstrap_ci, identification_scores
from brainldm.fit.protocol import protocol_for
from brainldm.generate.reconstruction import brain_reconstructions

__all__ = ["VARIANTS", "ProtocolEffects", "protocol_effects"]

#: (label, protocol changes, identification rule) of each variant; the first is the reference
VARIANTS = (
    ("independent noise, mean of samples (authors' rule)", {"shared_noise": False}, "authors"),
    ("shared noise (authors' seeding), mean of samples", {"shared_noise": True}, "authors"),
    ("independent noise, wins per sample", {"shared_noise": False}, "per_sample"),
    ("independent noise, best sample of each image", {"shared_noise": False}, "best_sample"),
)


@dataclasses.dataclass(frozen=True)
class ProtocolEffects:
    """What :func:`protocol_effects` measured.

    Attributes
    ----------
    table : pandas DataFrame
        One row per (variant, column): ``mean`` identification of ``X_zc``, and the paired
        ``change`` from the first of :data:`VARIANTS` with its 95% bootstrap CI over images
        (``ci_low``, ``ci_high``).
    subject : str
    n_images, n_samples : int
    """

    table: pd.DataFrame
    subject: str
    n_images: int
    n_samples: int

    def describe(self):
        """One line: whose reconstructions, of how many images, with how many samples."""
        return f"{self.subject}, X_zc of {self.n_images} test images, {self.n_samples} samples per image"

    def changes(self):
        """The change of each variant (rows) in each identification column (columns)."""
        return self.table.pivot_table(index="variant", columns="column", values="change", sort=False)

    def shared_noise(self):
        """What the authors' shared noise changes: ``low`` and ``high`` (the smallest and largest change
        over the columns), ``above`` (columns whose CI lies above zero) and ``n`` (columns)."""
        rows = self.table[self.table["variant"] == VARIANTS[1][0]]
        return {"low": float(rows["change"].min()), "high": float(rows["change"].max()),
                "above": int((rows["ci_low"] > 0).sum()), "n": len(rows)}


def protocol_effects(ds, models, settings, n_images=None, protocol=None, columns=None):
    """Identification of the same decoded ``z`` and ``c`` under each of :data:`VARIANTS`.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    settings : brainldm.models.ldm.SamplerSettings
        The reconstructions' sampler settings; use several samples.
    n_images : int, optional
    protocol : Protocol or str, optional
        The base protocol whose noise sharing is varied (default the dataset's).
    columns : dict, optional
        Identification columns (default :data:`brainldm.evaluate.metrics.IDENTIFICATION_COLUMNS`).

    Returns
    -------
    effects : ProtocolEffects
    """
    base = protocol_for(protocol, ds.name)
    columns = columns or IDENTIFICATION_COLUMNS
    per_image, cache = {}, {}
    for label, changes, rule in VARIANTS:
        protocol_k = dataclasses.replace(base, **changes)
        if protocol_k not in cache:
            ids, recon, _ = brain_reconstructions(ds, models, settings, n_images=n_images, protocol=protocol_k,
                                                  which=("X_z", "X_zc"))
            cache[protocol_k] = (ds.images(ids), recon["X_zc"], {})
        seen, gen, seen_features = cache[protocol_k]
        per_image[label] = identification_scores(models, seen, gen, columns, seen_features, rule)
    reference = VARIANTS[0][0]
    rows = []
    for label, _, _ in VARIANTS:
        for column in columns:
            values = np.asarray(per_image[label][column])
            change, low, high = bootstrap_ci(values - np.asarray(per_image[reference][column]))
            rows.append({"variant": label, "column": column, "mean": float(values.mean()), "change": change,
                         "ci_low": low, "ci_high": high})
    return ProtocolEffects(pd.DataFrame(rows), ds.subject, len(values), settings.n_samples)
