"""Cortical anatomy of the world's subjects: pycortex's bundled subject S1.

The world's voxels are the voxels of S1's ``fullhead`` functional volume
(31 × 100 × 100) that sample its visual ROIs. S1's overlay draws V1–V3, OFA,
FFA, EBA, PPA, OPA, RSC and IPS; it names V4, LO, V3A/B and V7 but draws no
outline for them, so those are derived here from the geometry of the flattened
cortex: unlabelled cortex within :data:`MID_RADIUS` flatmap units of V3 and of the next
higher area is V4 (towards FFA/PPA), LO (towards EBA/OFA) or V3AB (towards IPS).

A finer grid (``upsample`` = k: voxels of 2.24/k × 2.24/k × 4.13/k mm instead of S1's
2.24 × 2.24 × 4.13 mm) gives NSD-like voxel counts: about 4,200 visual voxels at k = 1 and
about four times as many at k = 2. Its pycortex transform is derived from ``fullhead`` once
and stored in the filestore as ``fullhead_xK``.

pycortex keeps a writable filestore (it caches masks and flatmap pixel maps
there); :func:`import_cortex` points it at a copy of the bundled S1 in the
brainldm cache before anything reads it.
"""

import shutil
from pathlib import Path

import numpy as np

from brainldm.data.cache import _permissions, cached_arrays, clean_stale, file_lock
from brainldm.errors import ParameterError
from brainldm.settings import cache_dir

__all__ = ["ROI_NAMES", "STREAMS", "ROI_STREAM", "SUBJECT", "XFM", "import_cortex", "visual_anatomy",
           "voxels_to_volume", "inkscape_available", "quiet", "transform_name"]

SUBJECT = "S1"
XFM = "fullhead"
#: NSD's ``streams`` labels (1-7) and the S1 ROIs the world groups into each
STREAMS = {
    "early": ("V1", "V2", "V3"),
    "midventral": ("V4",),
    "midlateral": ("LO",),
    "midparietal": ("V3AB",),
    "ventral": ("FFA", "PPA", "RSC"),
    "lateral": ("OFA", "EBA", "OPA"),
    "parietal": ("IPS",),
}
ROI_STREAM = {roi: stream for stream, rois in STREAMS.items() for roi in rois}
ROI_NAMES = tuple(ROI_STREAM)
_DRAWN = ("V1", "V2", "V3", "FFA", "PPA", "RSC", "OFA", "EBA", "OPA", "IPS")
_DERIVED = {"V4": ("FFA", "PPA"), "LO": ("EBA", "OFA"), "V3AB": ("IPS",)}
MID_RADIUS = 20.0  # flatmap units (S1's flat surfaces span about 780 x 410)
_VERSION = "1"


def inkscape_available():
    """Whether Debian's inkscape is on the PATH (pycortex rasterises ROI outlines and labels with it)."""
    return shutil.which("inkscape") is not None


_BUNDLED = []


def bundled_filestore():
    """pycortex's own filestore (the one it ships S1 in), before :func:`import_cortex` redirects it."""
    if not _BUNDLED:
        import cortex.database

        _BUNDLED.append(Path(cortex.database.default_filestore))
    return _BUNDLED[0]


def _file_sizes(folder):
    """Relative path -> size of every file under ``folder``."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def _complete_copy(source, target):
    """Whether ``target`` holds every file of ``source`` with its size (pycortex may add files of its own)."""
    if not target.is_dir():
        return False
    copied = _file_sizes(target)
    return all(copied.get(name) == size for name, size in _file_sizes(source).items())


def _copy_subject(source, store):
    """Copy pycortex's bundled subject ``source`` into the filestore ``store``, once, safely across processes.

    One process copies (an ``fcntl`` lock on ``<store>/../.S1.lock``) into a temporary folder of its
    own, which is renamed into place when complete and then marked complete; the others wait for
    the lock and find the copy done. A copy without the mark (left by an older version or an
    interrupted run) is checked file by file against the bundled one and redone if incomplete.
    """
    target, marker = store / source.name, store / f".{source.name}.complete"
    if marker.exists() and target.is_dir():
        return
    store.mkdir(parents=True, exist_ok=True)
    with file_lock(store.parent / f".{source.name}.lock"):
        if marker.exists() and target.is_dir():
            return
        if _complete_copy(source, target):
            marker.touch()
            return
        clean_stale(store, max_age=0)  # temporary copies of processes that died (none is running: we hold the lock)
        import tempfile

        tmp = Path(tempfile.mkdtemp(dir=store, prefix=f".{source.name}.", suffix=".tmp"))
        try:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
            tmp.chmod(_permissions(folder=True))
            if target.exists():  # an incomplete copy: set aside, then removed
                stale = Path(tempfile.mkdtemp(dir=store, prefix=f".{source.name}.", suffix=".tmp"))
                target.rename(stale / source.name)
                shutil.rmtree(stale, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        marker.touch()


def import_cortex():
    """Import pycortex with its filestore at ``<cache>/pycortex/db`` holding a copy of S1.

    Returns
    -------
    cortex : module
    """
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # pycortex prints a notice when inkscape is absent
        import cortex
        import cortex.database

    store = cache_dir() / "pycortex" / "db"
    if Path(cortex.db.filestore) != store:
        bundled = bundled_filestore()
        _copy_subject(bundled / SUBJECT, store)
        cortex.options.config.set("basic", "filestore", str(store))
        cortex.database.default_filestore = str(store)
        cortex.db.filestore = str(store)
        cortex.db._subjects = None
    if inkscape_available():
        cortex.options.config.set("dependency_paths", "inkscape", shutil.which("inkscape"))
    return cortex


def quiet(function, *args, **kwargs):
    """Run a pycortex call with its progress prints and geometry warnings silenced."""
    import contextlib
    import io
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def transform_name(upsample=1):
    """The pycortex transform of the world's voxel grid, created on first use for ``upsample`` > 1."""
    if upsample == 1:
        return XFM
    if upsample not in (2, 3):
        raise ParameterError(f"voxel upsampling (dataset_options voxel_upsample) must be 1, 2 or 3, got {upsample!r}")
    name = f"{XFM}_x{upsample}"
    cortex = import_cortex()
    if name not in cortex.db.get_paths(SUBJECT)["xfms"]:
        import nibabel

        coarse = cortex.db.get_xfm(SUBJECT, XFM)
        # coarse voxel centre i sits between fine voxels: fine index = k * i + (k - 1) / 2
        scale = np.diag([upsample, upsample, upsample, 1.0])
        scale[:3, 3] = (upsample - 1) / 2
        ref = coarse.reference
        fine = nibabel.Nifti1Image(np.zeros(tuple(upsample * d for d in ref.shape[:3]), np.uint8),
                                   ref.affine @ np.linalg.inv(scale))
        path = cache_dir() / "pycortex" / f"{name}_reference.nii.gz"
        nibabel.save(fine, path)
        cortex.db.save_xfm(SUBJECT, name, scale @ coarse.xfm, xfmtype="coord", reference=str(path))
    return name


def _compute_anatomy(upsample):
    from scipy.spatial import cKDTree

    cortex = import_cortex()
    xfm = transform_name(upsample)
    verts = quiet(cortex.utils.get_roi_verts, SUBJECT, roi=list(_DRAWN))
    lh, rh = cortex.db.get_surf(SUBJECT, "flat", merge=False, nudge=True)
    n_lh = lh[0].shape[0]
    flat = np.vstack([lh[0], rh[0]])[:, :2]
    hemi = np.r_[np.zeros(n_lh, np.int8), np.ones(rh[0].shape[0], np.int8)]
    label = np.full(flat.shape[0], -1, np.int64)
    for name in _DRAWN:
        label[verts[name]] = ROI_NAMES.index(name)

    # derived mid-level areas: unlabelled cortex near V3 and near the next area up
    unlabelled = np.flatnonzero(label < 0)
    d_v3 = cKDTree(flat[verts["V3"]]).query(flat[unlabelled])[0]
    d_up = np.stack([cKDTree(flat[np.concatenate([verts[r] for r in targets])]).query(flat[unlabelled])[0]
                     for targets in _DERIVED.values()], axis=1)
    near = (d_v3 < MID_RADIUS) & (d_up.min(1) < MID_RADIUS)
    names = list(_DERIVED)
    label[unlabelled[near]] = [ROI_NAMES.index(names[k]) for k in d_up[near].argmin(1)]

    # each voxel takes the label most of its vertices carry ("nearest" mapper)
    mapper = cortex.get_mapper(SUBJECT, xfm, "nearest")
    vox_of_vertex = np.concatenate([np.asarray(m.argmax(1)).ravel() for m in mapper.masks])
    shape = cortex.db.get_xfm(SUBJECT, xfm).shape
    counts = np.zeros((int(np.prod(shape)), len(ROI_NAMES) + 1))
    np.add.at(counts, (vox_of_vertex, label + 1), 1)
    voxel_label = counts.argmax(1) - 1
    voxels = np.flatnonzero(voxel_label >= 0)
    # mean flat position and hemisphere of each kept voxel's vertices
    sums = np.zeros((counts.shape[0], 2))
    np.add.at(sums, vox_of_vertex, flat)
    n_vertices = counts.sum(1)
    hemi_frac = np.bincount(vox_of_vertex, weights=hemi, minlength=counts.shape[0])
    return {
        "voxels": voxels,
        "roi": voxel_label[voxels],
        "flat": (sums[voxels] / n_vertices[voxels, None]).astype(np.float32),
        "hemisphere": (hemi_frac[voxels] / n_vertices[voxels] > 0.5).astype(np.int8),
    }


def visual_anatomy(upsample=1):
    """The world's voxels on S1: computed once (about 20 s) and cached.

    Parameters
    ----------
    upsample : {1, 2, 3}
        Subdivide S1's ``fullhead`` voxels this many times along each axis.

    Returns
    -------
    anatomy : dict
        ``voxels`` (v,) flat indices into the volume of :func:`transform_name`
        (C order; 31 × 100 × 100 at ``upsample=1``); ``roi`` (v,) index into :data:`ROI_NAMES`; ``flat``
        (v, 2) position on the flattened cortex; ``hemisphere`` (v,) 0 left,
        1 right.
    """
    params = {"subject": SUBJECT, "xfm": XFM, "upsample": upsample, "radius": MID_RADIUS, "rois": ROI_NAMES}
    return cached_arrays("anatomy", params, _VERSION, lambda: _compute_anatomy(upsample))


def voxels_to_volume(values, voxels, upsample=1, **kwargs):
    """A pycortex Volume of S1 with ``values`` at ``voxels`` and NaN elsewhere.

    Parameters
    ----------
    values : array of shape (v,)
    voxels : int array of shape (v,)
        Flat indices into the volume of :func:`transform_name`.
    upsample : {1, 2, 3}
    **kwargs
        Passed to :class:`cortex.Volume` (``cmap``, ``vmin``, ``vmax``...).
    """
    cortex = import_cortex()
    xfm = transform_name(upsample)
    shape = cortex.db.get_xfm(SUBJECT, xfm).shape
    volume = np.full(int(np.prod(shape)), np.nan, np.float32)
    volume[voxels] = values
    return cortex.Volume(volume.reshape(shape), SUBJECT, xfm, **kwargs)
