"""The two figures every chapter draws: bars with confidence intervals, and the papers' numbers beside ours.

Tables passed to :func:`ci_bars` have the package's standard columns ``mean``, ``ci_low`` and
``ci_high`` (what :func:`brainldm.evaluate.metrics.score_table`, the encoding and Table 1
summaries return), one row per bar. :func:`paper_beside` puts a paper's rows and this run's
rows in one table, with their difference, and prints it with rounded numbers.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from brainldm.errors import BrainLDMError

__all__ = ["ci_bars", "paper_beside"]

_COLUMNS = ("mean", "ci_low", "ci_high")


def ci_bars(table, x, hue=None, ax=None, title=None, ylabel=None, chance=None, value="mean"):
    """Bars of ``table[value]`` (default ``mean``) with their CIs, grouped along ``x`` and coloured by ``hue``.

    Parameters
    ----------
    table : pandas DataFrame
        Columns ``value`` (``mean``), ``x`` and (optionally) ``hue``; ``ci_low`` and ``ci_high`` draw the
        error bars (a table without them is drawn without).
    x : str
        The column whose values are the groups along the horizontal axis, in order of appearance.
    hue : str, optional
        The column whose values are the bars within a group (one colour each, with a legend).
    ax : matplotlib Axes, optional
        Draw here; default a new figure sized to the number of groups.
    title, ylabel : str, optional
    chance : float, optional
        Draw a dashed line at this value (e.g. 0.5 for two-way identification).
    value : str
        The column the bars show (e.g. ``"change"`` of :func:`brainldm.evaluate.paired.paired_differences`).

    Returns
    -------
    ax : matplotlib Axes
    """
    missing = [c for c in (value, x, *([hue] if hue else [])) if c not in table.columns]
    if missing:
        raise BrainLDMError(f"ci_bars needs the columns {missing}; the table has {list(table.columns)}")
    groups = list(dict.fromkeys(table[x]))
    hues = list(dict.fromkeys(table[hue])) if hue else [None]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(groups) * max(1, len(hues)) ** 0.5 + 2), 3))
    width = 0.8 / len(hues)
    for k, level in enumerate(hues):
        rows = table if level is None else table[table[hue] == level]
        rows = rows.set_index(x).reindex(groups)
        position = np.arange(len(groups)) + (k - (len(hues) - 1) / 2) * width
        error = (np.vstack([rows[value] - rows["ci_low"], rows["ci_high"] - rows[value]])
                 if set(_COLUMNS[1:]) <= set(table.columns) else None)
        ax.bar(position, rows[value], width, yerr=error, capsize=2, label=None if level is None else str(level))
    ax.set_xticks(np.arange(len(groups)), [str(g) for g in groups], rotation=30 if len(groups) > 4 else 0,
                  ha="right" if len(groups) > 4 else "center")
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1)
    if hue:
        ax.legend(fontsize="small")
    ax.set_ylabel(ylabel or "mean (95% CI)")
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax


def paper_beside(ours, paper, ours_label="this run", paper_label="paper", digits=3):
    """A paper's rows and this run's rows in one table, with this run minus the paper.

    Parameters
    ----------
    ours, paper : pandas DataFrame or Series
        Rows (methods) by columns (metrics); a Series is one row. Only the columns they share
        are kept, in the paper's order; rows are matched by name.
    ours_label, paper_label : str
        The outer index level that says where a row comes from.
    digits : int
        The printed table is rounded to this many digits.

    Returns
    -------
    table : pandas DataFrame
        Index (source, row) with sources ``paper_label``, ``ours_label`` and ``"difference"`` (for
        the rows both have). It is printed as it is returned.
    """
    ours = ours.to_frame().T if isinstance(ours, pd.Series) else ours
    paper = paper.to_frame().T if isinstance(paper, pd.Series) else paper
    columns = [c for c in paper.columns if c in ours.columns]
    if not columns:
        raise BrainLDMError(f"the paper's columns {list(paper.columns)} and ours {list(ours.columns)} share none")
    shared = [r for r in paper.index if r in ours.index]
    parts = {paper_label: paper[columns], ours_label: ours[columns]}
    if shared:
        parts["difference"] = ours.loc[shared, columns] - paper.loc[shared, columns]
    table = pd.concat(parts, names=["source", "row"])
    print(table.round(digits).to_string(na_rep="–"))
    return table
