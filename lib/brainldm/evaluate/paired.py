"""Paired differences: how much a method changes a score, image by image, with a bootstrap CI.

Two methods scored on the same test images (and, in this book, with the same noise for the
same sample) differ image by image; the mean of those differences, with a percentile
bootstrap over images, says whether the change is larger than what the choice of images
could give (:func:`paired_differences`). Table 1's extensions (chapters 4 to 7) and
MindDiffuser's stage 2 (chapter 8) are both measured this way.
"""

import numpy as np
import pandas as pd

from brainldm.errors import BrainLDMError
from brainldm.evaluate.metrics import bootstrap_ci

__all__ = ["paired_differences", "format_changes", "describe_changes", "summarise_changes"]


def paired_differences(table, baseline="baseline", n_boot=2000, level=0.95, seed=0):
    """Each method's change against ``baseline`` per metric, with paired bootstrap CIs over images.

    For each subject the per-image difference (method − baseline, same image) is
    bootstrapped over images; with several subjects, the mean over subjects is added: the
    per-image differences are first averaged over subjects (the test images are shared) and
    then bootstrapped.

    Parameters
    ----------
    table : pandas DataFrame
        One row per scored image: columns ``method``, ``metric``, ``image`` and ``score``, and
        optionally ``subject`` (without it, all rows are one group).
    baseline : str
        The method every other one is compared with.
    n_boot, level, seed
        See :func:`brainldm.evaluate.metrics.bootstrap_ci`.

    Returns
    -------
    differences : pandas DataFrame
        Columns ``subject`` ("mean" for the mean over subjects; absent if ``table`` has none),
        ``method``, ``metric``, ``baseline`` and ``value`` (mean scores), ``change``, ``ci_low``,
        ``ci_high``, ``excludes_zero`` (the CI lies on one side of 0), ``improved`` (the fraction
        of images whose score rose) and ``n`` (images).
    """
    grouped = "subject" in table.columns
    table = table if grouped else table.assign(subject="all")
    wide = table.pivot_table(index=["metric", "image"], columns=["method", "subject"], values="score")
    if baseline not in wide.columns.get_level_values("method"):
        raise BrainLDMError(f"no {baseline!r} rows to compare against; methods are {sorted(set(table['method']))}")
    subjects = list(dict.fromkeys(table["subject"]))
    methods = [m for m in dict.fromkeys(table["method"]) if m != baseline]
    rows = []
    for metric in dict.fromkeys(table["metric"]):
        block = wide.loc[metric]
        for method in methods:
            diffs = {name: (block[(method, name)] - block[(baseline, name)]).to_numpy() for name in subjects}
            base = {name: block[(baseline, name)].to_numpy() for name in subjects}
            if len(subjects) > 1:
                diffs["mean"] = np.mean([diffs[name] for name in subjects], axis=0)
                base["mean"] = np.mean([base[name] for name in subjects], axis=0)
            for name, diff in diffs.items():
                if np.isnan(diff).any():
                    raise BrainLDMError(f"{method} and {baseline} were not scored on the same images for {name}")
                change, low, high = bootstrap_ci(diff, n_boot, level, seed)
                rows.append({"subject": name, "method": method, "metric": metric, "baseline": base[name].mean(),
                             "value": base[name].mean() + change, "change": change, "ci_low": low, "ci_high": high,
                             "excludes_zero": bool(low > 0 or high < 0), "improved": float(np.mean(diff > 0)),
                             "n": len(diff)})
    out = pd.DataFrame(rows)
    return out if grouped else out.drop(columns="subject")


def _rows_of(differences, subject):
    """The rows of one subject: ``subject``, else the mean over subjects, else the only subject."""
    if "subject" not in differences.columns:
        return differences
    names = list(dict.fromkeys(differences["subject"]))
    subject = subject or ("mean" if "mean" in names else names[0])
    return differences[differences["subject"] == subject]


def format_changes(differences, subject=None, digits=3):
    """Changes and CIs of :func:`paired_differences` as text, one row per metric, one column per method.

    Cells read ``+0.052 [+0.031, +0.074]``; a ``*`` marks a CI that excludes 0. ``subject``
    picks one subject's rows (default the mean over subjects, or the only subject).

    Returns
    -------
    table : pandas DataFrame of str
    """
    rows = _rows_of(differences, subject)
    text = rows.apply(lambda r: f"{r['change']:+.{digits}f} [{r['ci_low']:+.{digits}f}, {r['ci_high']:+.{digits}f}]"
                      + ("*" if r["excludes_zero"] else " "), axis=1)
    table = rows.assign(text=text).pivot(index="metric", columns="method", values="text")
    return table.loc[list(dict.fromkeys(rows["metric"])), list(dict.fromkeys(rows["method"]))].rename_axis(
        index=None, columns=None)


def describe_changes(differences, metrics=None, subject=None, digits=3):
    """One sentence per (method, metric): whether the method raised or lowered it, beyond its CI.

    Returns
    -------
    text : str
        Lines like ``stage 2 raised SSIM: +0.012 (95% CI +0.004 to +0.020; higher in 34 of 50 images)``.
    """
    rows = _rows_of(differences, subject)
    if metrics is not None:
        rows = rows[rows["metric"].isin(metrics)]
    lines = []
    for _, r in rows.iterrows():
        verdict = "raised" if r["ci_low"] > 0 else "lowered" if r["ci_high"] < 0 else "did not clearly change"
        lines.append(f"{r['method']} {verdict} {r['metric']}: {r['change']:+.{digits}f} (95% CI "
                     f"{r['ci_low']:+.{digits}f} to {r['ci_high']:+.{digits}f}; higher in "
                     f"{round(r['improved'] * r['n'])} of {r['n']} images)")
    return "\n".join(lines)


def summarise_changes(differences, method, subject=None):
    """What ``method`` did to the metrics, in words: which it raised and lowered beyond their CIs.

    Returns
    -------
    text : str
        E.g. ``raised CLIP mid and CLIP late, lowered CNN early, and left 4 of 7 within their CIs``.
    """
    rows = _rows_of(differences, subject)
    rows = rows[rows["method"] == method]
    if rows.empty:
        raise BrainLDMError(f"no changes of {method!r}; methods are {sorted(set(differences['method']))}")
    raised = list(rows.loc[rows["ci_low"] > 0, "metric"])
    lowered = list(rows.loc[rows["ci_high"] < 0, "metric"])
    parts = [f"{verb} {' and '.join(metrics) if len(metrics) < 3 else ', '.join(metrics)}"
             for verb, metrics in (("raised", raised), ("lowered", lowered)) if metrics]
    left = len(rows) - len(raised) - len(lowered)
    if left:
        parts.append(f"left {left} of {len(rows)} within their CIs" if parts else
                     f"left all {len(rows)} within their CIs")
    if len(parts) < 3:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + ", and " + parts[-1]
