"""Figures the chapters share: image grids (of seen images and their reconstructions), brain maps, bars per ROI."""

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.container import BarContainer
from matplotlib.patches import Patch

from brainldm.data.anatomy import STREAMS, import_cortex, inkscape_available, quiet
from brainldm.figures.charts import ci_bars

__all__ = ["image_grid", "reconstruction_grid", "brain_map", "stream_map", "bars_by_roi"]


def image_grid(rows, row_labels=None, col_labels=None, size=1.4, cmap=None):
    """A grid of images, one list per row.

    Parameters
    ----------
    rows : list of arrays of shape (n_cols, H, W[, 3]), or dict of str to such arrays
        uint8 RGB images or float maps (shown with ``cmap``); a dict's keys are the row labels.
    row_labels : list of str, optional
    col_labels : list of str, optional
        Titles above the first row (long ones are wrapped).
    size : float
        Inches per image.

    Returns
    -------
    fig : matplotlib Figure
    """
    if isinstance(rows, dict):
        rows, row_labels = list(rows.values()), row_labels or list(rows)
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols, size * n_rows + 0.2), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(row):
                ax.imshow(row[j], cmap=cmap if np.ndim(row[j]) == 2 else None)
            if i == 0 and col_labels is not None:
                ax.set_title(textwrap.fill(col_labels[j], 22), fontsize=6)
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
    fig.tight_layout()
    return fig


def reconstruction_grid(ds, ids, panels, n_shown=6, captions=True):
    """The first ``n_shown`` test images above their reconstructions, with a caption of each.

    Parameters
    ----------
    ds : Dataset
        Gives the seen images and their captions.
    ids : int array of shape (n,)
        The images reconstructed.
    panels : dict of str to uint8 array of shape (n, H, W, 3)
        One row each, by label (e.g. :meth:`brainldm.generate.reconstruction.Reconstruction.panels`).
    n_shown : int
    captions : bool
        Title each column with the image's first caption.

    Returns
    -------
    fig : matplotlib Figure
    """
    shown = np.asarray(ids)[:n_shown]
    rows = {"seen": ds.images(shown), **{label: images[:n_shown] for label, images in panels.items()}}
    return image_grid(rows, col_labels=[texts[0] for texts in ds.captions(shown)] if captions else None)


def brain_map(dataset, values, title=None, cmap="inferno", vmin=None, vmax=None, colorbar=True):
    """Draw a ``(n_voxels,)`` vector on the subject's brain.

    A pycortex Volume (the world, on S1) becomes a flatmap with ROI outlines
    and labels (both need Debian's inkscape); a NIfTI image (NSD) becomes a
    nilearn mosaic of the volume.

    Returns
    -------
    fig : matplotlib Figure
    """
    volume = dataset.to_volume(np.asarray(values, dtype=np.float32))
    if hasattr(volume, "affine"):  # NIfTI
        from nilearn import plotting  # 1.5 s to import, and only NSD's volumes need it

        fig = plt.figure(figsize=(10, 3))
        plotting.plot_img(volume, display_mode="mosaic", cmap=cmap, vmin=vmin, vmax=vmax,
                          colorbar=colorbar, title=title, figure=fig, black_bg=False)
        return fig
    cortex = import_cortex()
    volume.cmap, volume.vmin, volume.vmax = cmap, vmin, vmax
    rois = inkscape_available()  # pycortex rasterises the ROI overlay with inkscape
    fig = quiet(cortex.quickflat.make_figure, volume, with_rois=rois, with_labels=rois,
                with_curvature=True, with_colorbar=colorbar, nanmean=True)
    fig.set_size_inches(10, 5.3)
    if title:
        fig.suptitle(title)
    return fig


def stream_map(dataset):
    """Flatmap (or volume) of the voxels coloured by NSD ``streams`` label, with a legend."""
    labels = np.full(dataset.n_voxels, np.nan, np.float32)
    for k, stream in enumerate(STREAMS, start=1):
        labels[dataset.roi_mask(stream)] = k
    fig = brain_map(dataset, labels, cmap="tab10", vmin=0.5, vmax=10.5, colorbar=False)
    colours = plt.get_cmap("tab10")(np.arange(len(STREAMS)))
    handles = [Patch(color=c, label=f"{k} {s}") for k, (s, c) in enumerate(zip(STREAMS, colours), start=1)]
    fig.legend(handles=handles, loc="lower center", ncol=len(STREAMS), fontsize=8, frameon=False)
    return fig


def bars_by_roi(table, value, low=None, high=None, hue="subject", ylabel=None, reference=None):
    """Grouped bars of ``table[value]`` per ROI (rows of ``table``), one colour per ``hue``.

    :func:`brainldm.figures.charts.ci_bars` with ``x="roi"``, for tables whose value and interval
    columns have other names, and with an optional reference value on each bar.

    Parameters
    ----------
    table : pandas DataFrame
        Columns ``roi``, ``hue`` and ``value`` (and optionally ``low``/``high`` for error bars).
    reference : str, optional
        A column drawn as a black tick on each bar (e.g. the true value in the world).

    Returns
    -------
    fig : matplotlib Figure
    """
    bars = pd.DataFrame({"roi": table["roi"], hue: table[hue], "mean": table[value]})
    if low is not None and high is not None:
        bars["ci_low"], bars["ci_high"] = table[low], table[high]
    ax = ci_bars(bars, x="roi", hue=hue, ylabel=ylabel or value)
    if reference is not None:
        rois = list(dict.fromkeys(table["roi"]))
        containers = [c for c in ax.containers if isinstance(c, BarContainer)]
        for g, (container, name) in enumerate(zip(containers, dict.fromkeys(table[hue]))):
            x = [patch.get_x() + patch.get_width() / 2 for patch in container.patches]
            truth = table[table[hue] == name].set_index("roi").reindex(rois)[reference]
            ax.scatter(x, truth, marker="_", color="k", s=60, zorder=3, label="simulated truth" if g == 0 else None)
        ax.legend(fontsize="small")
    return ax.figure
