"""Figures of several panels, and the world's estimates beside their truth.

* :func:`ci_panels` draws :func:`~brainldm.figures.charts.ci_bars` once per value of a column
  (a stage of denoising, a subject...), on a shared vertical axis;
* :func:`identity_scatter` puts an estimate against its known value, with the identity line
  (chapter 14's noise ceilings);
* :func:`oracle_bars` draws measured accuracies beside their noise-free oracle's.
"""

import matplotlib.pyplot as plt
import numpy as np

from brainldm.errors import BrainLDMError
from brainldm.figures.charts import ci_bars

__all__ = ["ci_panels", "identity_scatter", "oracle_bars"]


def ci_panels(table, panel, x, hue=None, ylabel=None, panel_width=4.0):
    """One :func:`~brainldm.figures.charts.ci_bars` panel per value of ``table[panel]``, side by side.

    Parameters
    ----------
    table : pandas DataFrame
        Columns ``mean`` (and ``ci_low``, ``ci_high`` for error bars), ``panel``, ``x`` and ``hue``.
    panel : str
        The column whose values are the panels, in order of appearance (titled ``"<panel> <value>"``).
    x, hue : str
        See :func:`~brainldm.figures.charts.ci_bars`; the legend is drawn in the last panel only.
    ylabel : str, optional
        Of the first panel.
    panel_width : float
        Inches per panel.

    Returns
    -------
    fig : matplotlib Figure
    """
    if panel not in table.columns:
        raise BrainLDMError(f"ci_panels needs the column {panel!r}; the table has {list(table.columns)}")
    values = list(dict.fromkeys(table[panel]))
    fig, axes = plt.subplots(1, len(values), figsize=(panel_width * len(values), 3.4), sharey=True, squeeze=False)
    for k, (ax, value) in enumerate(zip(axes[0], values)):
        ci_bars(table[table[panel] == value], x, hue=hue, ax=ax, title=f"{panel} {value}",
                ylabel=ylabel if k == 0 else " ")
        if hue and k < len(values) - 1:
            ax.get_legend().remove()
    fig.tight_layout()
    return fig


def identity_scatter(estimated, true, xlabel="true", ylabel="estimated", title=None, ax=None):
    """Each estimate against its true value, with the identity line and their correlation in the title.

    Parameters
    ----------
    estimated, true : arrays of shape (n,)
    xlabel, ylabel : str
    title : str, optional
        Followed by ``r = ...``.
    ax : matplotlib Axes, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    estimated, true = np.asarray(estimated, float), np.asarray(true, float)
    if estimated.shape != true.shape or estimated.ndim != 1:
        raise BrainLDMError(f"estimated and true must be 1-D arrays of the same length; found {estimated.shape} "
                            f"and {true.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.scatter(true, estimated, s=2, alpha=0.4)
    low, high = float(min(true.min(), estimated.min())), float(max(true.max(), estimated.max()))
    ax.plot([low, high], [low, high], "k--", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    r = np.corrcoef(estimated, true)[0, 1]
    ax.set_title(f"{title + ': ' if title else ''}r = {r:.2f}")
    ax.figure.tight_layout()
    return ax


def oracle_bars(table, label="pair", ylabel="mean r over dimensions (test)"):
    """Measured accuracies beside their oracle's, one pair of bars per row of ``table``.

    Parameters
    ----------
    table : pandas DataFrame
        Columns ``label``, ``oracle`` and ``measured`` (what
        :func:`brainldm.evaluate.truth.decoding_against_oracle` returns).
    label : str
        The column that names each row's group.
    ylabel : str

    Returns
    -------
    ax : matplotlib Axes
    """
    missing = [c for c in (label, "oracle", "measured") if c not in table.columns]
    if missing:
        raise BrainLDMError(f"oracle_bars needs the columns {missing}; the table has {list(table.columns)}")
    long = table.melt(id_vars=[label], value_vars=["oracle", "measured"], var_name="responses", value_name="mean")
    long["responses"] = long["responses"].map({"oracle": "oracle (noise-free)", "measured": "measured betas"})
    return ci_bars(long, label, hue="responses", ylabel=ylabel)
