"""Maps of per-voxel results: flatmaps with ROI outlines (world), volume slices (NSD), a WebGL viewer.

* :func:`flatmaps` draws several ``(n_voxels,)`` vectors side by side on one colour scale
  (:class:`MapScale`): on the world, pycortex flatmaps of S1 with the ROI outlines and labels
  of its overlay (labels need inkscape); on NSD, axial slices of the subject's volume with nilearn.
* :func:`category_map` draws a label per voxel (e.g. the best feature) with a legend.
* :func:`webgl_viewer` writes a self-contained interactive pycortex viewer (an
  ``index.html`` with its surfaces and data beside it; no network needed, but like any
  page that loads files it must be served over http — the built book is) into the book's
  static folder, ``<project>/_static/viewers/<name>/``; :func:`viewer_frame` embeds it in a chapter.
"""

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.patches import Patch

from brainldm.settings import project_root
from brainldm.data.anatomy import SUBJECT, XFM, import_cortex, inkscape_available, quiet
from brainldm.data.cache import cached_arrays
from brainldm.errors import BrainLDMError

__all__ = ["MapScale", "MapLayout", "flatmaps", "category_map", "webgl_viewer", "viewer_dir", "viewer_frame",
           "has_surface"]


@dataclass(frozen=True)
class MapScale:
    """The colour scale shared by the panels of a figure of maps.

    Attributes
    ----------
    cmap : str or matplotlib colormap
    vmin, vmax : float, optional
        Colour limits (default: the 1st and 99th percentiles over all maps).
    label : str, optional
        Label of the colour bar.
    """

    cmap: object = "inferno"
    vmin: float = None
    vmax: float = None
    label: str = None

    def limits(self, maps):
        """``(vmin, vmax)``, filling the unset ones from the finite values of ``maps``."""
        finite = np.concatenate([np.asarray(v, np.float64)[np.isfinite(v)] for v in maps])
        low = self.vmin if self.vmin is not None else (float(np.percentile(finite, 1)) if finite.size else 0.0)
        high = self.vmax if self.vmax is not None else (float(np.percentile(finite, 99)) if finite.size else 1.0)
        return low, high


@dataclass(frozen=True)
class MapLayout:
    """How the panels of a figure of maps are laid out (:func:`flatmaps`, :func:`category_map`).

    Every field has a default, so a chapter names only what it changes: ``MapLayout(ncols=3)``.

    Attributes
    ----------
    ncols : int
    panel_width : float
        Inches per panel.
    colorbar : bool
    labelsize : str
        Font size of the ROI labels on flatmaps.
    zoom : bool
        Show only the part of the flatmap that holds the voxels (world).
    """

    ncols: int = 2
    panel_width: float = 5.0
    colorbar: bool = True
    labelsize: str = "9pt"
    zoom: bool = True


def has_surface(ds):
    """Whether ``ds`` maps onto a pycortex surface (the world's S1) rather than a NIfTI volume."""
    return not hasattr(ds.to_volume(np.zeros(ds.n_voxels, np.float32)), "affine")


_HEIGHT = 1024  # pycortex's default flatmap height (pixels)


def _base_layers(labels, labelsize):
    """S1's flatmap curvature and ROI outlines (with labels) as RGBA images, and their extent (cached).

    pycortex draws both again for every flatmap, the ROIs through inkscape (10-20 s each);
    here they are rendered once, on a blank map, and reused under and over every map.
    """
    cortex = import_cortex()

    def compute():
        blank = cortex.Volume(np.full(cortex.db.get_xfm(SUBJECT, XFM).shape, np.nan, np.float32), SUBJECT, XFM)
        with_rois = inkscape_available()  # pycortex rasterises the ROI overlay with inkscape
        fig = quiet(cortex.quickflat.make_figure, blank, with_rois=with_rois, with_labels=labels and with_rois,
                    with_curvature=True, with_colorbar=False, labelsize=labelsize, height=_HEIGHT)
        images = {im.get_label(): im for im in fig.axes[0].images}
        curvature = images["curvature"]
        out = {"curvature": curvature.to_rgba(curvature.get_array(), bytes=True),
               "extent": np.asarray(curvature.get_extent(), np.float64)}
        rois = np.asarray(images["rois"].get_array(), np.float32) if "rois" in images else np.zeros((1, 1, 4))
        out["rois"] = np.round(rois * (255 if rois.max() <= 1.0 else 1)).astype(np.uint8)
        plt.close(fig)
        return out

    params = {"subject": SUBJECT, "height": _HEIGHT, "labels": bool(labels), "labelsize": labelsize,
              "inkscape": inkscape_available(), "pycortex": getattr(cortex, "__version__", "")}
    return cached_arrays("flatmap_layers", params, "1", compute)


def _crop(image, extent, box):
    """The part of an image drawn over ``extent`` (left, right, bottom, top) that covers ``box``."""
    left, right, bottom, top = extent
    rows, cols = image.shape[:2]
    dx, dy = (right - left) / cols, (top - bottom) / rows
    x0, x1, y0, y1 = box
    j0, j1 = int(np.clip(np.floor((x0 - left) / dx), 0, cols)), int(np.clip(np.ceil((x1 - left) / dx), 0, cols))
    i0, i1 = int(np.clip(np.floor((top - y1) / dy), 0, rows)), int(np.clip(np.ceil((top - y0) / dy), 0, rows))
    return image[i0:i1, j0:j1], (left + j0 * dx, left + j1 * dx, top - i1 * dy, top - i0 * dy)


def _flatmap(ax, ds, values, title, scale, layout):
    """One flatmap panel; ``scale`` has its limits set."""
    cortex = import_cortex()
    layers = _base_layers(True, layout.labelsize)
    extent = tuple(layers["extent"])
    box = extent
    if layout.zoom and ds.anatomy is not None:  # the world's voxels: the visual cortex of S1
        low, high = ds.anatomy["flat"].min(0), ds.anatomy["flat"].max(0)
        margin = 0.08 * (high - low).max()
        box = (low[0] - margin, high[0] + margin, low[1] - margin, high[1] + margin)
    volume = ds.to_volume(np.asarray(values, dtype=np.float32))
    data, data_extent = quiet(cortex.quickflat.make_flatmap_image, volume, height=_HEIGHT, nanmean=True)
    for zorder, (image, image_extent, kwargs) in enumerate([
            (layers["curvature"], extent, {}),
            (data, tuple(data_extent), {"cmap": scale.cmap, "vmin": scale.vmin, "vmax": scale.vmax,
                                        "interpolation": "nearest"}),
            (layers["rois"], extent, {"interpolation": "bicubic"})]):
        if image.shape[0] > 1:
            part, part_extent = _crop(image, image_extent, box)
            ax.imshow(part, extent=part_extent, aspect="equal", zorder=zorder, **kwargs)
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)


def _slices(ax, ds, values, title, scale):
    """Axial slices of a volume (NSD); ``scale`` has its limits set."""
    from nilearn import plotting  # heavy (about a second), and only NSD's volumes need it

    image = ds.to_volume(np.asarray(values, dtype=np.float32))
    cuts = max(1, min(6, image.shape[2]))
    with warnings.catch_warnings():  # voxels outside the dataset are NaN by design; nilearn zeroes them
        warnings.filterwarnings("ignore", message="Non-finite values detected")
        plotting.plot_img(image, display_mode="z", cut_coords=cuts, axes=ax, cmap=scale.cmap, vmin=scale.vmin,
                          vmax=scale.vmax, colorbar=False, black_bg=False, title=None, annotate=False)
    ax.set_title(title, fontsize=10)


def flatmaps(ds, maps, scale=None, layout=None, title=None):
    """Draw several per-voxel maps of one subject in a grid, with one shared colour bar.

    Flatmaps of S1's cortex with its ROIs outlined on the world; axial slices of the volume on NSD.

    Parameters
    ----------
    ds : Dataset
    maps : dict of str to array of shape (n_voxels,)
        Panel title to values (NaN: not drawn).
    scale : MapScale, optional
        Colour map, limits and colour-bar label (default ``MapScale()``: inferno, percentile limits).
    layout : MapLayout, optional
        Columns, panel size, colour bar, ROI label size, zoom (default ``MapLayout()``).
    title : str, optional
        Above the whole figure.

    Returns
    -------
    fig : matplotlib Figure

    Examples
    --------
    >>> flatmaps(ds, {"z": r_z, "c": r_c}, MapScale(vmin=0, vmax=0.8, label="test r"))  # doctest: +SKIP
    """
    scale = scale or MapScale()
    layout = layout or MapLayout()
    if not maps:
        raise BrainLDMError("flatmaps needs at least one map (a dict of title to per-voxel values)")
    for name, values in maps.items():
        if np.shape(values) != (ds.n_voxels,):
            raise BrainLDMError(f"map {name!r} has shape {np.shape(values)}; expected ({ds.n_voxels},), "
                                "one value per voxel of the dataset")
    vmin, vmax = scale.limits(maps.values())
    scale = MapScale(scale.cmap, vmin, vmax, scale.label)
    surface = has_surface(ds)
    ncols = max(1, min(int(layout.ncols), len(maps)))
    nrows = -(-len(maps) // ncols)
    height = layout.panel_width * ((0.85 if layout.zoom else 0.55) if surface else 0.3)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(layout.panel_width * ncols, height * nrows + 0.3 + 0.5 * layout.colorbar))
    for ax, (name, values) in zip(axes.ravel(), maps.items()):
        if surface:
            _flatmap(ax, ds, values, name, scale, layout)
        else:
            _slices(ax, ds, values, name, scale)
    for ax in axes.ravel()[len(maps):]:
        ax.axis("off")
    if layout.colorbar:
        mappable = ScalarMappable(norm=Normalize(vmin, vmax), cmap=plt.get_cmap(scale.cmap))
        fig.colorbar(mappable, ax=axes.ravel().tolist(), orientation="horizontal", fraction=0.05 / nrows,
                     shrink=min(0.6, 1.6 / ncols), pad=0.03, label=scale.label)
    if title:
        fig.suptitle(title)
    return fig


def category_map(ds, labels, names, title=None, colors=None, panel_width=7.0):
    """Draw a category per voxel (e.g. the feature that predicts it best), with a legend.

    Parameters
    ----------
    ds : Dataset
    labels : int array of shape (n_voxels,), or dict of str to such arrays
        Index into ``names``; negative values are not drawn. A dict draws one panel per item
        (its key the panel's title) with one legend.
    names : list of str
    title : str, optional
        The panel's title (one array) or the figure's (a dict).
    colors : list of colours, optional
        One per name (default: matplotlib's ``tab10``).
    panel_width : float

    Returns
    -------
    fig : matplotlib Figure
    """
    panels = dict(labels) if isinstance(labels, dict) else {title or "": labels}
    for name, values in panels.items():
        values = np.asarray(values)
        if values.shape != (ds.n_voxels,) or values.max(initial=-1) >= len(names):
            raise BrainLDMError(f"labels must be {ds.n_voxels} indices into the {len(names)} names (or -1); "
                                f"found shape {values.shape}, max {values.max(initial=-1)}")
    if colors is None:
        colors = [plt.get_cmap("tab10")(k % 10) for k in range(len(names))]
    maps = {name: np.where(np.asarray(values) >= 0, values, np.nan).astype(np.float32)
            for name, values in panels.items()}
    cmap = ListedColormap(list(colors), name="brainldm_categories")
    layout = MapLayout(ncols=min(len(maps), 3), panel_width=panel_width if len(maps) == 1 else panel_width / 1.5,
                       colorbar=False)
    fig = flatmaps(ds, maps, MapScale(cmap, -0.5, len(names) - 0.5), layout,
                   title=title if isinstance(labels, dict) else None)
    fig.subplots_adjust(bottom=0.1)
    if len(panels) == 1:
        values = np.asarray(next(iter(panels.values())))
        handles = [Patch(color=c, label=f"{n} ({int((values == k).sum())} voxels)")
                   for k, (n, c) in enumerate(zip(names, colors))]
    else:
        handles = [Patch(color=c, label=n) for n, c in zip(names, colors)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(names), 4), fontsize=8, frameon=False)
    return fig


def viewer_dir(name, root=None):
    """Where :func:`webgl_viewer` writes the viewer ``name``: ``<project>/_static/viewers/<name>``.

    Jupyter Book copies the project's ``_static`` folder into the built HTML, so a chapter
    (``book/NN_*.html``) links to it as ``../_static/viewers/<name>/index.html``.
    """
    return Path(root or project_root()) / "_static" / "viewers" / name


def webgl_viewer(ds, maps, name, title="brainldm", scale=None, out_dir=None):
    """Write an interactive WebGL viewer of per-voxel maps on the subject's cortex.

    Built with ``cortex.webgl.make_static``: the page embeds its JavaScript and loads the
    surfaces (``.ctm``) and data (``.png``) from files beside it, so it works offline when
    served over http (the book's HTML is). The first call on a machine builds S1's
    surface files into the pycortex filestore (about half a minute); later calls take a
    second.

    Parameters
    ----------
    ds : Dataset
        Must map onto a pycortex surface (the world); NSD volumes have no surface here.
    maps : dict of str to array of shape (n_voxels,)
        Name (shown in the viewer's menu) to values.
    name : str
        Folder name under :func:`viewer_dir`.
    title : str
    scale : MapScale, optional
        Colour map and limits (unset limits: each map's 1st and 99th percentiles).
    out_dir : path, optional
        Write here instead of :func:`viewer_dir`.

    Returns
    -------
    index : Path
        The viewer's ``index.html``.
    """
    scale = scale or MapScale()
    if not has_surface(ds):
        raise BrainLDMError(f"{ds.name} maps onto volumes, not a cortical surface: the WebGL viewer needs a "
                            "pycortex subject (the world's S1). Use flatmaps for NSD volumes.")
    cortex = import_cortex()
    volumes = {}
    for label, values in maps.items():
        values = np.asarray(values, dtype=np.float32)
        low, high = scale.limits([values])
        volumes[label] = ds.to_volume(values, cmap=scale.cmap, vmin=low, vmax=high)
    out = Path(out_dir) if out_dir is not None else viewer_dir(name)
    shutil.rmtree(out, ignore_errors=True)
    quiet(cortex.webgl.make_static, str(out), volumes, types=(), title=title, recache=False)
    return out / "index.html"


def viewer_frame(ds, maps, name, title="brainldm", scale=None):
    """Write a :func:`webgl_viewer` into the book's static folder and embed it in a chapter's page.

    Parameters
    ----------
    ds : Dataset
        Must map onto a pycortex surface (:func:`has_surface`).
    maps : dict of str to array of shape (n_voxels,)
    name, title
        See :func:`webgl_viewer`.
    scale : MapScale, optional

    Returns
    -------
    frame : IPython.display.HTML
        An iframe of the viewer (linked as a chapter page sees it, ``../_static/viewers/<name>/``),
        a link to open it in its own tab, and the number of maps and the viewer's size.
    """
    index = webgl_viewer(ds, maps, name, title=title, scale=scale)
    link = f"../_static/viewers/{index.parent.name}/index.html"
    size = sum(f.stat().st_size for f in index.parent.rglob("*") if f.is_file()) / 1e6
    return HTML(f'<iframe src="{link}" width="100%" height="520" style="border:0"></iframe>'
                f'<p><a href="{link}" target="_blank">open the viewer in its own tab</a> '
                f'({len(maps)} maps, {size:.0f} MB)</p>')
