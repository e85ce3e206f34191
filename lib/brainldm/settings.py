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
==================  =========================  ==============================
"""

import os
from pathlib import Path

__all__ = ["data_home", "cache_dir", "models_dir", "nsd_root", "enforce_offline"]

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
