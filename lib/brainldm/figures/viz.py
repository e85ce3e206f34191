"""Figures the chapters share: image grids, brain maps, bars per ROI."""

import numpy as np

__all__ = ["image_grid", "brain_map", "stream_map", "bars_by_roi"]


def image_grid(rows, row_labels=None, col_labels=None, size=1.4, cmap=None):
    """A grid of images, one list per row.

    Parameters
    ----------
    rows : list of arrays of shape (n_cols, H, W[, 3])
        uint8 RGB images or float maps (shown with ``cmap``).
    row_labels : list of str, optional
    col_labels : list of str, optional
        Titles above the first row (long ones are wrapped).
    size : float
        Inches per image.

    Returns
    -------
    fig : matplotlib Figure
    """
    import textwrap

    import matplotlib.pyplot as plt

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


def brain_map(dataset, values, title=None, cmap="inferno", vmin=None, vmax=None, colorbar=True):
    """Draw a ``(n_voxels,)`` vector on the subject's brain.

    A pycortex Volume (the world, on S1) becomes a flatmap with ROI outlines
    and labels (both need Debian's inkscape); a NIfTI image (NSD) becomes a
    nilearn mosaic of the volume.

    Returns
    -------
    fig : matplotlib Figure
    """
    import matplotlib.pyplot as plt

    from brainldm.data.anatomy import import_cortex, inkscape_available, quiet

    volume = dataset.to_volume(np.asarray(values, dtype=np.float32))
    if hasattr(volume, "affine"):  # NIfTI
        from nilearn import plotting

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
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from brainldm.data.anatomy import STREAMS

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

    Parameters
    ----------
    table : pandas DataFrame
        Columns ``roi``, ``hue`` and ``value`` (and optionally ``low``/``high`` for error bars).
    reference : str, optional
        A column drawn as a black tick on each bar (e.g. the true value in the world).
    """
    import matplotlib.pyplot as plt

    rois = list(dict.fromkeys(table["roi"]))
    groups = list(dict.fromkeys(table[hue]))
    width = 0.8 / len(groups)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rois) * len(groups) ** 0.5), 3.2))
    for g, name in enumerate(groups):
        sub = table[table[hue] == name].set_index("roi").reindex(rois)
        x = np.arange(len(rois)) + (g - (len(groups) - 1) / 2) * width
        err = None
        if low is not None and high is not None:
            err = np.vstack([sub[value] - sub[low], sub[high] - sub[value]])
        ax.bar(x, sub[value], width, yerr=err, label=str(name), capsize=2)
        if reference is not None:
            ax.scatter(x, sub[reference], marker="_", color="k", s=60, zorder=3,
                       label="simulated truth" if g == 0 else None)
    ax.set_xticks(np.arange(len(rois)), rois, rotation=45, ha="right")
    ax.set_ylabel(ylabel or value)
    ax.legend(fontsize=7, ncol=min(len(groups) + 1, 5))
    fig.tight_layout()
    return fig
