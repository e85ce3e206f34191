"""The Natural Scenes Dataset (Allen et al. 2022), read from a local copy in its official layout.

Nothing is downloaded: the root comes from ``root=``, else ``BRAINLDM_NSD_ROOT``, else
``~/brainldm_data/nsd`` (see :func:`brainldm.settings.nsd_root`), and a missing file
raises a :class:`~brainldm.errors.BrainLDMError` naming the path that was looked for.

The files read, relative to the root (:class:`NSDLayout`)::

    nsddata/experiments/nsd/nsd_expdesign.mat              masterordering, subjectim, sharedix
    nsddata/experiments/nsd/nsd_stim_info_merged.csv       nsdId -> cocoId, cocoSplit
    nsddata/ppdata/subjXX/func1pt8mm/roi/streams.nii.gz    ROI labels 1-7, -1 outside the brain
    nsddata/ppdata/subjXX/func1pt8mm/roi/nsdgeneral.nii.gz
    nsddata_betas/ppdata/subjXX/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_sessionNN.{nii.gz,hdf5}
    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5           imgBrick, 73000 x 425 x 425 x 3 uint8
    nsddata_stimuli/stimuli/nsd/annotations/captions_{train,val}2017.json   COCO captions

Voxels: by default the dataset exposes the union of the voxels labelled > 0 in
``streams.nii.gz`` and ``nsdgeneral.nii.gz`` (so that every stream ROI and
``nsdgeneral`` are complete); ``voxels=("nsdgeneral",)`` gives NSD's usual
general visual mask alone. Betas are streamed a few trials at a time and masked
as they are read, so memory stays near one masked session plus the result, which
is cached on disk (:func:`brainldm.data.cache.cached_arrays`).
"""

import dataclasses
import gzip
import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import scipy.io

from brainldm.data.anatomy import STREAMS
from brainldm.data.cache import cached_arrays
from brainldm.errors import BrainLDMError, DataError, ParameterError, check_choice
from brainldm.data.progress import progress_bar
from brainldm.settings import nsd_root
from brainldm.data.datasets.base import Dataset

__all__ = ["NSDDataset", "NSDOptions", "NSDLayout", "NSD_SUBJECTS", "STREAM_LABELS", "STANDARD_VOLUMES", "BETA_SCALE", "TRIAL_CHUNK",
           "load_expdesign", "load_roi_volume"]

#: NSD's eight subjects
NSD_SUBJECTS = tuple(f"subj{i:02d}" for i in range(1, 9))

#: labels of ``streams.nii.gz`` (-1 outside the brain, 0 in no stream), as NSD names them: 1 early,
#: 2 midventral, 3 midlateral, 4 midparietal, 5 ventral, 6 lateral, 7 parietal (the order of anatomy's STREAMS)
STREAM_LABELS = dict(enumerate(STREAMS, start=1))

#: NSD stores betas as int16 = round(300 x % signal change)
BETA_SCALE = 300.0

#: trials read from a session file at once (bounds memory while streaming)
TRIAL_CHUNK = 50

#: the ROI volumes NSD ships that this reader understands
STANDARD_VOLUMES = ("streams", "nsdgeneral")

_FORMATS = {"hdf5": "hdf5", "nii": "nii.gz"}
_VERSION = "1"
_READ_ERRORS = (OSError, EOFError, zlib.error, ValueError, KeyError, nib.filebasedimages.ImageFileError)
#: bytes hashed at each end of a file for its identity in cache keys (a gzip file's end holds the CRC-32 of all)
_IDENTITY_BYTES = 1 << 20


class NSDLayout:
    """Paths of the NSD files under one root, as the NSD data manual names them.

    Parameters
    ----------
    root : path
        The folder holding ``nsddata/``, ``nsddata_betas/`` and ``nsddata_stimuli/``.
    """

    def __init__(self, root):
        self.root = Path(root)

    @property
    def expdesign(self):
        return self.root / "nsddata/experiments/nsd/nsd_expdesign.mat"

    @property
    def stim_info(self):
        return self.root / "nsddata/experiments/nsd/nsd_stim_info_merged.csv"

    @property
    def stimuli(self):
        return self.root / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"

    @property
    def annotations(self):
        return self.root / "nsddata_stimuli/stimuli/nsd/annotations"

    def roi(self, subject, name):
        """``nsddata/ppdata/<subject>/func1pt8mm/roi/<name>.nii.gz``."""
        return self.root / f"nsddata/ppdata/{subject}/func1pt8mm/roi/{name}.nii.gz"

    def betas_dir(self, subject):
        return self.root / f"nsddata_betas/ppdata/{subject}/func1pt8mm/betas_fithrf_GLMdenoise_RR"

    def betas(self, subject, session, fmt):
        """Path of one session's betas; ``fmt`` is ``"hdf5"`` or ``"nii"``."""
        return self.betas_dir(subject) / f"betas_session{session:02d}.{_FORMATS[fmt]}"

    def sessions(self, subject):
        """Numbers of the sessions with a betas file (either format), sorted."""
        folder = self.betas_dir(subject)
        found = set()
        for fmt in _FORMATS.values():
            for path in folder.glob(f"betas_session*.{fmt}"):
                digits = path.name[len("betas_session"):-len(fmt) - 1]
                if digits.isdigit():
                    found.add(int(digits))
        return sorted(found)


# --- readers of single files --------------------------------------------------------
def _unreadable(path, error):
    size = path.stat().st_size if path.exists() else 0
    return DataError(
        f"could not read {path} ({size} bytes): {type(error).__name__}: {error}. "
        "The file is probably truncated or corrupt; copy it again from the NSD bucket "
        "(s3://natural-scenes-dataset/<same relative path>).")


def _require(path, what, hint):
    if not path.exists():
        raise BrainLDMError(f"missing {what}: expected {path}. {hint}")
    return path


def load_expdesign(path):
    """``masterordering``, ``subjectim`` and ``sharedix`` from ``nsd_expdesign.mat``, all still 1-based.

    Returns
    -------
    masterordering : int array of shape (n_trials,)
        Per trial, a 1-based index into a row of ``subjectim`` (NSD: 30000 trials).
    subjectim : int array of shape (8, n_subject_images)
        Per subject, the 1-based 73k ids of its images (NSD: 10000).
    sharedix : int array of shape (n_shared,)
        1-based 73k ids of the images every subject saw (NSD: 1000).
    """
    try:
        design = scipy.io.loadmat(path, variable_names=["masterordering", "subjectim", "sharedix"])
        fields = [np.ravel(design["masterordering"]), np.atleast_2d(design["subjectim"]), np.ravel(design["sharedix"])]
    except _READ_ERRORS as error:
        raise _unreadable(Path(path), error) from error
    for name, values in zip(("masterordering", "subjectim", "sharedix"), fields):
        if values.size == 0 or values.dtype.kind not in "iuf" or not np.all(np.isfinite(values)) \
                or not np.all(values == np.round(values)):
            raise DataError(f"{path}: {name} must hold whole numbers (1-based indices); found "
                            f"{values.dtype} values {np.ravel(values)[:5].tolist()}...")
    masterordering, subjectim, sharedix = (values.astype(np.int64) for values in fields)
    _check_indices(path, "masterordering", masterordering, subjectim.shape[1],
                   "a 1-based index into a row of subjectim")
    _check_indices(path, "subjectim", subjectim, None, "1-based 73k image ids (73KID)")
    _check_indices(path, "sharedix", sharedix, None, "1-based 73k image ids (73KID)")
    return masterordering, subjectim, sharedix


def _check_indices(path, name, values, high, what):
    """Raise a :class:`DataError` naming ``name`` if ``values`` are not 1-based indices up to ``high``."""
    low = int(values.min())
    if low < 1:
        zero_based = " (it looks 0-based; NSD's file is 1-based, as MATLAB counts)" if low == 0 else ""
        raise DataError(f"{path}: {name} holds {low}, but it must be {what} >= 1{zero_based}. "
                        "Use the original nsd_expdesign.mat from the NSD bucket.")
    if high is not None and int(values.max()) > high:
        raise DataError(f"{path}: {name} holds {int(values.max())}, but it must be {what} in 1..{high} "
                        "(subjectim has that many columns). Use the original nsd_expdesign.mat.")


def load_roi_volume(path):
    """An ROI volume: int array of shape (X, Y, Z) and its NIfTI image (affine, header)."""
    try:
        image = nib.load(path)
        values = np.asarray(image.dataobj)
    except _READ_ERRORS as error:
        raise _unreadable(Path(path), error) from error
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(f"ROI volume {path} holds {int(bad.sum())} NaN or infinite values; ROI volumes hold "
                            "integer labels (NSD: -1 outside the brain, 0 none, >0 in the ROI)")
        if not np.all(values == np.round(values)):
            raise DataError(f"ROI volume {path} holds non-integer values (e.g. {values[values != np.round(values)][0]}); "
                            "ROI volumes hold integer labels. Was it resampled with interpolation?")
    elif values.dtype.kind not in "iub":
        raise DataError(f"ROI volume {path} stores {values.dtype}; ROI volumes hold integer labels")
    return values.astype(np.int64), image


class _SessionFile:
    """One session's betas file: its header now, its data in ``(n, X, Y, Z)`` int16 chunks on demand.

    NIfTI files are ``X x Y x Z x trials``. The ``.hdf5`` files were written by MATLAB,
    so h5py sees the axes reversed: ``trials x Z x Y x X``; chunks of both are
    returned as ``(n, X, Y, Z)`` so that one mask serves both.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.fmt = "hdf5" if self.path.suffix == ".hdf5" else "nii"
        try:
            if self.fmt == "hdf5":
                with h5py.File(self.path, "r") as f:
                    shape, self.dtype = f["betas"].shape, f["betas"].dtype
            else:
                image = nib.load(self.path)
                header, proxy = image.header, image.dataobj
                shape, self.dtype = header.get_data_shape(), header.get_data_dtype()
                self.offset = int(proxy.offset)
                # nibabel moves scl_slope / scl_inter from the header to the proxy (the header then says None)
                slope, inter = float(proxy.slope), float(proxy.inter)
                if (slope, inter) != (1.0, 0.0):
                    raise DataError(
                        f"{self.path} has a NIfTI scaling (scl_slope {slope}, scl_inter {inter}). NSD betas are "
                        "raw int16 = round(300 x % signal change) without one, and brainldm divides them by 300; "
                        "with a scaling the stored numbers mean something else (a converted file?). Use the "
                        "original betas from the NSD bucket, or set scl_slope 1 and scl_inter 0 if the "
                        "integers are NSD's.")
        except KeyError as error:
            raise BrainLDMError(f"{self.path} has no dataset 'betas' (NSD's key); is it an NSD betas file?") \
                from error
        except _READ_ERRORS as error:
            raise _unreadable(self.path, error) from error
        if len(shape) != 4:
            raise BrainLDMError(f"{self.path} holds an array of shape {shape}; NSD betas are 4-D "
                                "(X x Y x Z x trials in NIfTI, trials x Z x Y x X in hdf5)")
        if self.fmt == "hdf5":
            n, z, y, x = shape
        else:
            x, y, z, n = shape
        if np.dtype(self.dtype).kind != "i" or np.dtype(self.dtype).itemsize != 2:
            raise BrainLDMError(f"{self.path} stores {np.dtype(self.dtype)}; NSD betas are int16 "
                                "(% signal change x 300). Use the original files, not converted ones.")
        self.shape, self.n_trials = (x, y, z), n

    def chunks(self):
        """Yield ``(start, int16 array of shape (n, X, Y, Z))``, :data:`TRIAL_CHUNK` trials at a time."""
        size = TRIAL_CHUNK
        try:
            if self.fmt == "hdf5":
                with h5py.File(self.path, "r") as f:
                    dataset = f["betas"]
                    for start in range(0, self.n_trials, size):
                        yield start, dataset[start:start + size].transpose(0, 3, 2, 1)
            else:
                # one gzip stream read forward once; a trial is X*Y*Z contiguous values (Fortran order), and
                # reading on to the end makes gzip check the stream's CRC-32 and length: damage is an error
                x, y, z = self.shape
                dtype = np.dtype(self.dtype)
                trial_bytes = x * y * z * dtype.itemsize
                with gzip.open(self.path, "rb") as f:
                    _read_exactly(f, self.offset)
                    for start in range(0, self.n_trials, size):
                        n = min(size, self.n_trials - start)
                        raw = np.frombuffer(_read_exactly(f, n * trial_bytes), dtype=dtype)
                        yield start, raw.reshape(n, z, y, x).transpose(0, 3, 2, 1).astype(np.int16)
                    while f.read(1 << 20):
                        pass
        except _READ_ERRORS as error:
            raise _unreadable(self.path, error) from error


def _read_exactly(f, n):
    data = f.read(n)
    if len(data) != n:
        raise EOFError(f"the file ends {n - len(data)} bytes early")
    return data


def _file_identity(path):
    """Name, size and a hash of the first and last MB of ``path``: a key of its contents for the cache.

    The end of a gzip file holds the CRC-32 and length of all its contents, so a ``.nii.gz`` whose
    contents change anywhere changes its key (a copy with the same size and time is not trusted).
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(_IDENTITY_BYTES))
        if size > _IDENTITY_BYTES:
            f.seek(max(_IDENTITY_BYTES, size - _IDENTITY_BYTES))
            digest.update(f.read())
    return [path.name, size, digest.hexdigest()[:20]]


# --- the dataset ---------------------------------------------------------------------
@dataclass(frozen=True)
class NSDOptions:
    """How :class:`NSDDataset` reads a subject: the ``dataset_options`` of ``load_dataset("nsd", ...)``.

    Attributes
    ----------
    root : path, optional
        NSD root; else ``BRAINLDM_NSD_ROOT``, else ``~/brainldm_data/nsd``.
    sessions : int, optional
        Read the first ``sessions`` sessions (NSD: up to 40; 37 are public);
        by default every session on disk, which must be numbered 1, 2, ... without gaps.
    zscore : bool
        Z-score every voxel within each session (over that session's trials), as
        Takagi & Nishimoto do; otherwise betas are in % signal change (int16 / 300).
    voxels : sequence of str, optional
        Names of the ROI volumes whose voxels (values > 0) the dataset exposes: any of
        ``"streams"``, ``"nsdgeneral"`` and the keys of ``rois``; by default all of them.
    rois : dict of str to path, optional
        Further ROI volumes (NIfTI on the subject's func1pt8mm grid); each becomes an ROI
        named by its key, made of its voxels > 0.
    betas_format : {"auto", "hdf5", "nii"}
        Which file of each session to read; ``"auto"`` prefers ``.hdf5`` (faster to read).
    annotations : path, optional
        Folder holding COCO's ``captions_{train,val}2017.json``; by default
        ``nsddata_stimuli/stimuli/nsd/annotations`` under the root.
    cache : bool
        Keep the masked betas in the on-disk cache (:func:`brainldm.settings.cache_dir`).
    """

    root: str = None
    sessions: int = None
    zscore: bool = False
    voxels: tuple = None
    rois: dict = None
    betas_format: str = "auto"
    annotations: str = None
    cache: bool = True

    def __post_init__(self):
        check_choice("betas_format", self.betas_format, ("auto", "hdf5", "nii"))

    @classmethod
    def from_keywords(cls, options):
        """The options of a dict of keyword arguments; an unknown key is a :class:`ParameterError`."""
        valid = [field.name for field in dataclasses.fields(cls)]
        unknown = [key for key in options if key not in valid]
        if unknown:
            raise ParameterError(f"unknown option(s) {', '.join(map(repr, unknown))} of the nsd dataset; "
                                 f"valid options are: {', '.join(valid)}")
        return cls(**options)


class NSDDataset(Dataset):
    """One subject of a local copy of the Natural Scenes Dataset.

    Parameters
    ----------
    subject : {"subj01", ..., "subj08"}
    **options
        The fields of :class:`NSDOptions`: ``root``, ``sessions``, ``zscore``, ``voxels``, ``rois``,
        ``betas_format``, ``annotations``, ``cache``.

    Attributes
    ----------
    options : NSDOptions
    layout : NSDLayout
    sessions : list of int
        The sessions read.
    trials_per_session : int
        750 in NSD.
    roi_names : list of str
        The stream names of ``streams.nii.gz`` (``early`` ... ``parietal``), ``nsdgeneral``
        and the keys of ``rois``, for the volumes in ``voxels``.
    volume_shape : tuple of int
        ``(X, Y, Z)`` of the subject's func1pt8mm grid.

    Notes
    -----
    Image ids are 0-based indices into NSD's 73k images (``imgBrick`` rows); the
    test split is the shared images the subject saw in the loaded sessions.
    """

    name = "nsd"
    #: the dataclass of the keyword arguments (``dataset_options`` are checked against its fields)
    options_class = NSDOptions

    def __init__(self, subject="subj01", **options):
        self.subject = check_choice("NSD subject", subject, NSD_SUBJECTS)
        self.options = options = NSDOptions.from_keywords(options)
        root = nsd_root(options.root)
        if not root.is_dir():
            raise BrainLDMError(
                f"NSD root {root} does not exist. Pass root=... or set BRAINLDM_NSD_ROOT to the folder "
                "that holds nsddata/, nsddata_betas/ and nsddata_stimuli/ (see README, 'Running on NSD').")
        self.layout = NSDLayout(root)
        self.zscore, self.cache = bool(options.zscore), bool(options.cache)
        self.annotations = Path(options.annotations) if options.annotations is not None else self.layout.annotations

        self._read_design()
        self._files = self._find_sessions(options.sessions, options.betas_format)
        self.sessions = list(range(1, len(self._files) + 1))
        self.trials_per_session = self._files[0].n_trials
        self.volume_shape = self._files[0].shape
        self._read_rois(options.voxels, dict(options.rois or {}))
        self._split_arrays = None
        self._stim_info = None
        self._coco = {}

    # --- construction: everything is checked before any betas are read ----------------
    def _read_design(self):
        path = _require(self.layout.expdesign, "NSD experiment design",
                        "Copy nsddata/experiments/nsd/ from the NSD bucket into the NSD root.")
        masterordering, subjectim, sharedix = load_expdesign(path)
        row = NSD_SUBJECTS.index(self.subject)
        if subjectim.shape[0] <= row:
            raise BrainLDMError(f"{path}: subjectim has {subjectim.shape[0]} rows, no row for {self.subject}")
        self._masterordering = masterordering
        # 73KID is 1-based in nsd_expdesign.mat; the dataset's ids are 0-based imgBrick rows
        self._subject_images = subjectim[row] - 1
        self._shared = np.sort(sharedix - 1)

    def _find_sessions(self, n_sessions, betas_format):
        on_disk = self.layout.sessions(self.subject)
        folder = self.layout.betas_dir(self.subject)
        if not on_disk:
            raise BrainLDMError(
                f"no betas of {self.subject}: expected betas_session01.hdf5 or betas_session01.nii.gz in "
                f"{folder}. Copy nsddata_betas/ppdata/{self.subject}/func1pt8mm/betas_fithrf_GLMdenoise_RR/ "
                "from the NSD bucket.")
        if n_sessions is None:
            n_sessions = max(on_disk)
        elif isinstance(n_sessions, (bool, np.bool_)) or not isinstance(n_sessions, (int, np.integer)) \
                or n_sessions < 1:
            raise ParameterError(f"sessions must be a positive integer (the first N sessions) or None (every "
                                 f"session on disk), got {n_sessions!r}")
        files = []
        for session in range(1, int(n_sessions) + 1):
            candidates = {"auto": ("hdf5", "nii"), "hdf5": ("hdf5",), "nii": ("nii",)}[betas_format]
            paths = [self.layout.betas(self.subject, session, fmt) for fmt in candidates]
            found = [p for p in paths if p.exists()]
            if not found:
                raise BrainLDMError(
                    f"missing session file of {self.subject}: looked for {' and '.join(map(str, paths))}. "
                    f"Sessions on disk: {on_disk}. Copy the file, or pass sessions=N to read only the first "
                    "N sessions.")
            files.append(_SessionFile(found[0]))
        first = files[0]
        for f in files[1:]:
            if (f.shape, f.n_trials) != (first.shape, first.n_trials):
                raise BrainLDMError(
                    f"{f.path} holds {f.n_trials} trials on a {f.shape} grid, but {first.path} holds "
                    f"{first.n_trials} on {first.shape}; every session of a subject must match (NSD: 750 trials).")
        needed = len(files) * first.n_trials
        if needed > self._masterordering.size:
            raise BrainLDMError(
                f"{len(files)} sessions x {first.n_trials} trials need {needed} entries of masterordering, but "
                f"{self.layout.expdesign} has {self._masterordering.size}; pass sessions=N with fewer sessions.")
        return files

    def _read_rois(self, voxels, user_rois):
        paths = {name: self.layout.roi(self.subject, name) for name in STANDARD_VOLUMES}
        for name, path in user_rois.items():
            if name in paths or name in STREAM_LABELS.values():
                raise BrainLDMError(f"ROI name {name!r} is taken by NSD's volumes; choose another key in rois=")
            paths[name] = Path(path)
        voxels = list(paths) if voxels is None else [voxels] if isinstance(voxels, str) else list(voxels)
        if not voxels:
            raise BrainLDMError(f"voxels is empty; give one or more of {list(paths)}")
        self._volumes, self._volume_images = {}, {}
        for name in voxels:
            check_choice("ROI volume", name, paths)
            path = _require(paths[name], f"ROI volume {name!r} of {self.subject}",
                            f"Copy nsddata/ppdata/{self.subject}/func1pt8mm/roi/ from the NSD bucket, "
                            f"or choose other volumes with voxels=... (available: {list(paths)}).")
            volume, image = load_roi_volume(path)
            if volume.shape != self.volume_shape:
                raise BrainLDMError(
                    f"ROI volume {path} has shape {volume.shape} but the betas of {self.subject} "
                    f"({self._files[0].path}) are on a {self.volume_shape} grid. Use a volume of the subject's "
                    "func1pt8mm space (nsddata/ppdata/subjXX/func1pt8mm/roi/).")
            self._volumes[name], self._volume_images[name] = volume, image
        self._mask3d = np.zeros(self.volume_shape, dtype=bool)
        for volume in self._volumes.values():
            self._mask3d |= volume > 0
        if not self._mask3d.any():
            raise BrainLDMError(f"the ROI volumes {voxels} of {self.subject} have no voxel > 0")
        self.roi_names = []
        for name, volume in self._volumes.items():
            if name == "streams":
                self.roi_names += [label for value, label in STREAM_LABELS.items() if (volume == value).any()]
            else:
                self.roi_names.append(name)

    # --- the Dataset interface ----------------------------------------------------------
    @property
    def n_voxels(self):
        return int(self._mask3d.sum())

    def _roi_mask(self, roi):
        if roi in STREAM_LABELS.values():
            value = {label: value for value, label in STREAM_LABELS.items()}[roi]
            return self._volumes["streams"][self._mask3d] == value
        return self._volumes[roi][self._mask3d] > 0

    def trial_image_ids(self):
        """The 0-based 73k id of the image shown on every trial of the loaded sessions.

        Trial ``t`` (1-based) of session ``s`` is entry ``trials_per_session * (s - 1) + t``
        of ``masterordering``, a 1-based index into the subject's row of ``subjectim``.

        Returns
        -------
        ids : int array of shape (n_sessions * trials_per_session,)
        """
        order = self._masterordering[:len(self.sessions) * self.trials_per_session]
        return self._subject_images[order - 1]  # masterordering is 1-based

    def _trials(self, split):
        if self._split_arrays is None:
            params = {"root": str(self.layout.root), "subject": self.subject, "zscore": self.zscore,
                      "files": [_file_identity(f.path) for f in self._files],
                      "mask": hashlib.sha256(np.packbits(self._mask3d).tobytes()).hexdigest()}
            if self.cache:
                self._split_arrays = cached_arrays("nsd_betas", params, _VERSION, self._read_betas)
            else:
                self._split_arrays = self._read_betas()
        return self._split_arrays[f"{split}_betas"], self._split_arrays[f"{split}_ids"]

    def _read_betas(self):
        """Stream every session, mask it, and file each trial under train or test.

        Returns
        -------
        arrays : dict
            ``train_betas``, ``test_betas``: float32 ``(n_trials, n_voxels)``;
            ``train_ids``, ``test_ids``: int ``(n_trials,)``.
        """
        ids = self.trial_image_ids()
        is_test = np.isin(ids, self._shared)
        out = {split: np.empty((int(rows.sum()), self.n_voxels), dtype=np.float32)
               for split, rows in (("train", ~is_test), ("test", is_test))}
        row_in_split = np.where(is_test, np.cumsum(is_test) - 1, np.cumsum(~is_test) - 1)
        session_betas = np.empty((self.trials_per_session, self.n_voxels), dtype=np.float32)
        for i, session in enumerate(progress_bar(self._files, desc=f"NSD {self.subject} betas", unit="session")):
            for start, chunk in session.chunks():
                session_betas[start:start + len(chunk)] = chunk[:, self._mask3d]
            session_betas /= BETA_SCALE
            if self.zscore:
                std = session_betas.std(0)
                session_betas -= session_betas.mean(0)
                session_betas /= np.where(std > 0, std, 1.0)
            trials = slice(i * self.trials_per_session, (i + 1) * self.trials_per_session)
            for split, rows in (("train", ~is_test[trials]), ("test", is_test[trials])):
                out[split][row_in_split[trials][rows]] = session_betas[rows]
        return {"train_betas": out["train"], "train_ids": ids[~is_test],
                "test_betas": out["test"], "test_ids": ids[is_test]}

    def images(self, ids):
        """Stimuli from ``nsd_stimuli.hdf5``, reading only the rows asked for.

        Parameters
        ----------
        ids : int array of shape (n,)
            0-based 73k ids.

        Returns
        -------
        images : uint8 array of shape (n, 425, 425, 3)
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        path = _require(self.layout.stimuli, "NSD stimuli",
                        "Copy nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5 from the NSD bucket.")
        uniq, inverse = np.unique(ids, return_inverse=True)
        try:
            with h5py.File(path, "r") as f:
                brick = f["imgBrick"]
                if uniq.size and (uniq[0] < 0 or uniq[-1] >= brick.shape[0]):
                    raise BrainLDMError(f"image ids must be 0-based 73k ids in [0, {brick.shape[0]}); "
                                        f"got {uniq[0]} .. {uniq[-1]}")
                rows = brick[uniq] if uniq.size else np.zeros((0,) + brick.shape[1:], brick.dtype)
        except _READ_ERRORS as error:
            raise _unreadable(path, error) from error
        return rows[inverse]

    def coco_ids(self, ids):
        """COCO image id and split (``"train2017"`` / ``"val2017"``) of each 0-based 73k id."""
        if self._stim_info is None:
            path = _require(self.layout.stim_info, "NSD stimulus info",
                            "Copy nsddata/experiments/nsd/nsd_stim_info_merged.csv from the NSD bucket.")
            try:
                table = pd.read_csv(path)
            except (*_READ_ERRORS, pd.errors.ParserError, UnicodeDecodeError) as error:
                raise _unreadable(path, error) from error
            missing = {"cocoId", "cocoSplit"} - set(table.columns)
            if missing:
                raise BrainLDMError(f"{path} lacks the column(s) {sorted(missing)}; is it nsd_stim_info_merged.csv?")
            nsd_ids = table["nsdId"] if "nsdId" in table.columns else table.index  # nsdId is 0-based
            self._stim_info = table.set_index(np.asarray(nsd_ids))[["cocoId", "cocoSplit"]]
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        unknown = np.setdiff1d(ids, self._stim_info.index)
        if unknown.size:
            raise BrainLDMError(f"image ids {unknown[:5].tolist()} are not in {self.layout.stim_info}")
        rows = self._stim_info.loc[ids]
        return rows["cocoId"].to_numpy(np.int64), rows["cocoSplit"].astype(str).tolist()

    def _coco_captions(self, split):
        if split not in self._coco:
            path = _require(self.annotations / f"captions_{split}.json", "COCO captions",
                            "Unpack COCO's annotations_trainval2017.zip there, or pass annotations=FOLDER.")
            try:
                annotations = json.loads(path.read_text())["annotations"]
            except (*_READ_ERRORS, json.JSONDecodeError) as error:
                raise _unreadable(path, error) from error
            bad = [entry for entry in annotations if not isinstance(entry, dict)
                   or not isinstance(entry.get("caption"), str) or "image_id" not in entry or "id" not in entry]
            if bad:
                raise DataError(f"{path}: {len(bad)} caption entries lack 'id', 'image_id' or a text 'caption' "
                                f"(first: {str(bad[0])[:200]}); is it COCO's captions file, unmodified?")
            captions = {}
            for entry in sorted(annotations, key=lambda a: a["id"]):
                captions.setdefault(entry["image_id"], []).append(entry["caption"].strip())
            self._coco[split] = captions
        return self._coco[split]

    def captions(self, ids):
        """COCO captions of each image (usually five), joined through ``cocoId``.

        Returns
        -------
        captions : list (length n) of lists of str
        """
        coco_ids, splits = self.coco_ids(ids)
        return [list(self._coco_captions(split).get(int(coco), [])) for coco, split in zip(coco_ids, splits)]

    def to_volume(self, values, fill=np.nan):
        """A NIfTI image of the subject's func1pt8mm grid with ``values`` at the dataset's voxels.

        Parameters
        ----------
        values : array of shape (n_voxels,)
        fill : float
            Value of the voxels the dataset does not expose.

        Returns
        -------
        image : nibabel.Nifti1Image
            float32 volume of shape ``volume_shape``, with the ROI volumes' affine.
        """
        values = np.asarray(values)
        if values.shape != (self.n_voxels,):
            raise BrainLDMError(f"expected a vector of {self.n_voxels} voxel values, got shape {values.shape}")
        volume = np.full(self.volume_shape, fill, dtype=np.float32)
        volume[self._mask3d] = values
        reference = next(iter(self._volume_images.values()))
        return nib.Nifti1Image(volume, reference.affine)
