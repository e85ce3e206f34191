"""Where brainldm keeps data, caches and models, and the offline guarantee.

One resolver for every location: an explicit argument wins, then a
``BRAINLDM_*`` environment variable, then a folder under the user's home
(``~/brainldm_data``), as gallantlab's voxelwise tutorials resolve their data home.

==================  =========================  ==============================
location            environment variable       default
==================  =========================  ==============================
data home           ``BRAINLDM_DATA``          ``~/brainldm_data``
cache               ``BRAINLDM_CACHE``         ``<data home>/cache``
real model weights  ``BRAINLDM_MODELS``        ``<data home>/models``
NSD root            ``BRAINLDM_NSD_ROOT``      ``<data home>/nsd``
torch device        ``BRAINLDM_DEVICE``        ``cuda`` if a GPU is visible, else ``cpu``
model dtype         ``BRAINLDM_DTYPE``         ``float16`` on CUDA, else ``float32``
host allocator      ``BRAINLDM_ALLOCATOR``     ``tuned`` (``glibc``: leave glibc's defaults)
==================  =========================  ==============================

Device and dtype take torch's spellings (``cuda``, ``cuda:1``, ``cpu``; ``float16``,
``bfloat16``, ``float32``). The dtype is the one models are loaded and run in; fits,
statistics and metrics always compute in float32 (or float64) on the same device.
"""

import os
from pathlib import Path

from brainldm.errors import BrainLDMError

# The environment of the test suite's processes and of the nbval kernels it starts, which
# `brainldm refs` gives its kernels too (tests/conftest.py sets it before torch is imported):
# progress bars off and one CPU thread. Float sums depend on the thread count: a model fitted on
# two threads differs from one fitted on one in its last bits, near-tie comparisons in a chapter
# then flip, and a reference written on two threads fails the suite's one-thread run.
TEST_ENVIRONMENT = {"TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}

__all__ = ["data_home", "cache_dir", "models_dir", "nsd_root", "enforce_offline", "tune_allocator", "torch_device",
           "torch_dtype", "DTYPES", "project_root", "MMAP_THRESHOLD", "TRIM_THRESHOLD",
           "TEST_ENVIRONMENT"]

#: the dtypes models can run in, as torch spells them
DTYPES = ("float32", "float16", "bfloat16")

_OFFLINE_VARIABLES = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "DIFFUSERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}


def _resolve(path, variable, default):
    if path is None:
        path = os.environ.get(variable) or default
    return Path(path).expanduser().resolve()


def data_home(path=None):
    """The folder that holds everything brainldm writes: argument → ``BRAINLDM_DATA`` → ``~/brainldm_data``."""
    return _resolve(path, "BRAINLDM_DATA", Path.home() / "brainldm_data")


def cache_dir(path=None):
    """The on-disk cache of expensive stages: argument → ``BRAINLDM_CACHE`` → ``<data home>/cache``."""
    return _resolve(path, "BRAINLDM_CACHE", data_home() / "cache")


def models_dir(path=None):
    """The folder of real model weights: argument → ``BRAINLDM_MODELS`` → ``<data home>/models``."""
    return _resolve(path, "BRAINLDM_MODELS", data_home() / "models")


def nsd_root(path=None):
    """The root of a local NSD copy: argument → ``BRAINLDM_NSD_ROOT`` → ``<data home>/nsd``."""
    return _resolve(path, "BRAINLDM_NSD_ROOT", data_home() / "nsd")


def enforce_offline():
    """Make the Hugging Face libraries refuse the network (they then read local files only).

    Called when :mod:`brainldm` is imported, before diffusers or transformers are;
    values a user set explicitly are kept.
    """
    for name, value in _OFFLINE_VARIABLES.items():
        os.environ.setdefault(name, value)


#: glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` that :func:`tune_allocator` sets (bytes)
MMAP_THRESHOLD = 256 * 2**20
TRIM_THRESHOLD = 2**30


def tune_allocator():
    """Keep freed host memory for reuse instead of handing it back to the OS at every step.

    By default glibc serves large blocks with ``mmap`` and unmaps them when freed, so every torch
    step that allocates a batch's activations pays page faults to get zeroed pages back; Dask's
    workers make it worse (their nanny sets ``MALLOC_TRIM_THRESHOLD_=65536``, and the chapters'
    kernels inherit it). This sets ``M_MMAP_THRESHOLD`` to :data:`MMAP_THRESHOLD` (blocks below it
    come from the heap) and ``M_TRIM_THRESHOLD`` to :data:`TRIM_THRESHOLD` (up to that much free heap
    is kept) with ``mallopt``, at run time, in every process that imports brainldm. Measured here
    (one thread, world U-Net, 100 images x 16 DDIM steps with guidance): 12.2 s with glibc's
    defaults (1.8 s of it in the kernel, 1.15 M page faults), 21.0 s under Dask's setting (10.0 s in
    the kernel), 10.3 s tuned (0.0 s in the kernel, 10 k page faults).

    ``BRAINLDM_ALLOCATOR=glibc`` leaves glibc's settings alone; elsewhere than glibc this does nothing.

    Returns
    -------
    tuned : bool
        Whether both settings were applied.
    """
    if os.environ.get("BRAINLDM_ALLOCATOR", "tuned") == "glibc":
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the running process's own symbols: no library search at import
    except (OSError, AttributeError):  # not glibc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, TRIM_THRESHOLD))


def torch_device(device=None):
    """The torch device to compute on: argument → ``BRAINLDM_DEVICE`` → ``cuda`` if available, else ``cpu``.

    Returns
    -------
    device : torch.device
    """
    import torch  # heavy: `import brainldm` (the CLI, the paths resolver) does not load it

    value = device if device not in (None, "") else os.environ.get("BRAINLDM_DEVICE") or None
    if value is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as error:
        raise BrainLDMError(f"unknown device {value!r} (argument or BRAINLDM_DEVICE); expected a torch device "
                            "such as 'cpu', 'cuda' or 'cuda:1'") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BrainLDMError(f"device {value!r} was asked for (argument or BRAINLDM_DEVICE) but torch sees no "
                            "CUDA GPU; use 'cpu' or install a CUDA build of torch")
    return device


def torch_dtype(dtype=None, device=None):
    """The dtype models run in: argument → ``BRAINLDM_DTYPE`` → float16 on CUDA, else float32.

    Parameters
    ----------
    dtype : str or torch.dtype, optional
        One of :data:`DTYPES` (or the torch dtype).
    device : torch.device, optional
        Decides the default (:func:`torch_device` of None if not given).

    Returns
    -------
    dtype : torch.dtype
    """
    import torch  # heavy: `import brainldm` (the CLI, the paths resolver) does not load it

    value = dtype if dtype not in (None, "") else os.environ.get("BRAINLDM_DTYPE") or None
    if value is None:
        device = torch_device(device)
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(value, torch.dtype):
        value = str(value).removeprefix("torch.")
    if value not in DTYPES:
        raise BrainLDMError(f"unknown dtype {value!r} (argument or BRAINLDM_DTYPE); expected one of "
                            f"{', '.join(DTYPES)}")
    return getattr(torch, value)


def project_root():
    """The repository folder: ``BRAINLDM_ROOT``, else the one this package was installed from."""
    root = os.environ.get("BRAINLDM_ROOT")
    root = Path(root) if root else Path(__file__).resolve().parents[2]
    if not (root / "chapters").is_dir():
        raise BrainLDMError(f"no chapters/ folder in {root}; run from a brainldm checkout "
                            "(pip install -e .) or set BRAINLDM_ROOT to one")
    return root
