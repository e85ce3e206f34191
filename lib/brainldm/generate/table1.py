"""The technical report's Table 1 over subjects: the baseline and its three extensions, with what each changes.

Takagi & Nishimoto's report (2023) sums up its extensions as generally improving on the
baseline while "each technique did not necessarily improve all measures for all subjects".
:func:`compare_subjects` runs every method for each subject
(:meth:`brainldm.generate.extensions.ExtensionRun.compare`) and returns a
:class:`Table1Results`, which gives Table 1 per subject and over subjects, each method's change
against the baseline and each step's change against the step before, with paired bootstrap
confidence intervals over the (shared) test images, and how many columns each method raised or
lowered for each subject.
"""

from dataclasses import dataclass

import pandas as pd

from brainldm.errors import ParameterError
from brainldm.evaluate.paired import paired_differences
from brainldm.generate.extensions import METHODS, ExtensionRun, table1_summary

__all__ = ["TABLE1_STEPS", "Table1Results", "compare_subjects", "step_differences"]

#: what each step of the report adds: label -> (method, the method it builds on)
TABLE1_STEPS = {"+G (over +T)": ("+T+G", "+T"), "+D (over +T+G)": ("+T+G+D", "+T+G")}


def step_differences(means):
    """Each of :data:`TABLE1_STEPS` as the difference of two rows of ``means``.

    Parameters
    ----------
    means : pandas DataFrame
        One row per method (e.g. :meth:`Table1Results.means`, or the report's Table 1 with
        ``baseline`` for its "CVPR baseline"), one column per metric.

    Returns
    -------
    steps : pandas DataFrame
        One row per step whose two methods ``means`` has.
    """
    rows = {label: means.loc[after] - means.loc[before] for label, (after, before) in TABLE1_STEPS.items()
            if after in means.index and before in means.index}
    return pd.DataFrame(rows).T.reindex(columns=means.columns)


@dataclass(frozen=True)
class Table1Results:
    """Table 1's methods scored for several subjects (what :func:`compare_subjects` returns).

    Attributes
    ----------
    comparisons : tuple of brainldm.generate.extensions.MethodComparison
        One per subject, each with its per-image identification ``table``.
    settings : brainldm.generate.extensions.ExtensionSettings
        What every subject's run did.
    """

    comparisons: tuple
    settings: object

    @property
    def subjects(self):
        return [c.subject for c in self.comparisons]

    @property
    def methods(self):
        return tuple(self.comparisons[0].methods)

    @property
    def table(self):
        """Every subject's per-image identification: columns ``subject``, ``method``, ``metric``, ``image``, ``score``."""
        return pd.concat([c.table for c in self.comparisons], ignore_index=True)

    def describe(self):
        """One line: images, samples, steps and subjects."""
        sampler = self.settings.sampler
        n_images = sorted({int(c.table["image"].nunique()) for c in self.comparisons})
        return (f"{'/'.join(map(str, n_images))} test images, {sampler.n_samples} sample(s) each, "
                f"{sampler.num_inference_steps} DDIM steps, {len(self.subjects)} subject(s) ({', '.join(self.subjects)})")

    def summary(self):
        """Table 1 per subject and its mean ± s.d. over subjects (:func:`~brainldm.generate.extensions.table1_summary`)."""
        return table1_summary(self.table)

    def means(self):
        """The mean over subjects of each method (rows) in each column (columns): what the report prints."""
        return self.summary()[1].xs("mean", axis=1, level=1).rename_axis(index=None, columns=None)

    def changes(self, baseline=None):
        """Each method's change against ``baseline`` (default the first method), per subject and on the mean.

        Returns
        -------
        changes : pandas DataFrame
            :func:`brainldm.evaluate.paired.paired_differences`: subject ``"mean"`` (with several
            subjects) and each subject, with 95% bootstrap CIs over the test images.
        """
        return paired_differences(self.table, baseline=baseline or self.methods[0])

    def steps(self):
        """Each of :data:`TABLE1_STEPS` as a paired change against the step before, labelled by step."""
        parts = []
        for label, (after, before) in TABLE1_STEPS.items():
            if after in self.methods and before in self.methods:
                rows = self.table[self.table["method"].isin([after, before])]
                parts.append(paired_differences(rows, baseline=before).assign(method=label))
        if not parts:
            raise ParameterError(f"no step of {list(TABLE1_STEPS)} can be measured with the methods {list(self.methods)}")
        return pd.concat(parts, ignore_index=True)

    def consistency(self, changes=None, subject=None):
        """How many columns each method raised and lowered beyond its CI, for each subject and on the mean.

        Parameters
        ----------
        changes : pandas DataFrame, optional
            :meth:`changes` (computed if not given).
        subject : str, optional
            Count for this subject only (``"mean"``: the mean over subjects).

        Returns
        -------
        counts : pandas DataFrame
            Index (method, subject), or method for one ``subject``; columns ``raised``, ``lowered``
            and ``columns`` (how many were compared).
        """
        changes = self.changes() if changes is None else changes
        flags = changes.assign(raised=changes["excludes_zero"] & (changes["change"] > 0),
                               lowered=changes["excludes_zero"] & (changes["change"] < 0), columns=1)
        counts = flags.groupby(["method", "subject"], sort=False)[["raised", "lowered", "columns"]].sum()
        return counts if subject is None else counts.xs(subject, level="subject")


def compare_subjects(datasets, models, settings=None, methods=METHODS):
    """Run and score every method of Table 1 for each subject.

    Parameters
    ----------
    datasets : sequence of Dataset
        One per subject, of one dataset (their test images are shared).
    models : ModelSet
    settings : brainldm.generate.extensions.ExtensionSettings, optional
        Default the first dataset's (:func:`brainldm.generate.extensions.extension_settings`).
    methods : tuple of str
        The first is the reference of :meth:`Table1Results.changes`.

    Returns
    -------
    results : Table1Results
    """
    datasets = list(datasets)
    if not datasets:
        raise ParameterError("compare_subjects needs at least one subject's dataset")
    comparisons = []
    for ds in datasets:  # one subject's run at a time: its reconstructions are released before the next
        run = ExtensionRun(ds, models, settings)
        comparisons.append(run.compare(methods))
    return Table1Results(tuple(comparisons), run.settings)
