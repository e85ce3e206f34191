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
==================  =========================  ==============================

Device and dtype take torch's spellings (``cuda``, ``cuda:1``, ``cpu``; ``float16``,
``bfloat16``, ``float32``). The dtype is the one models are loaded and run in; fits,
statistics and metrics always compute in float32 (or float64) on the same device.
"""

import os
from pathlib import Path

from brainldm.errors import BrainLDMError

__all__ = ["data_home", "cache_dir", "models_dir", "nsd_root", "enforce_offline", "torch_device", "torch_dtype",
           "DTYPES", "project_root"]

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
