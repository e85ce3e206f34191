"""An on-disk cache for expensive stages, keyed by everything that determines them.

A stage's result is stored under ``<cache>/<stage>/<digest>.npz`` where the
digest hashes the stage name, its parameters and a code version. Writes go to a
temporary file that is renamed into place, so a crash never leaves half a result
and two processes never read a partial file.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .settings import cache_dir

__all__ = ["cache_key", "array_digest", "cached_arrays", "atomic_write"]


def cache_key(stage, params, version):
    """A stable hex digest of ``stage``, ``params`` (JSON-serialisable) and ``version``."""
    payload = json.dumps({"stage": stage, "params": params, "version": version},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def array_digest(*arrays):
    """A hex digest of the contents, shapes and dtypes of ``arrays``: a cache key for derived results."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()[:20]


def atomic_write(path, write):
    """Call ``write(tmp_path)`` then rename the temporary file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def cached_arrays(stage, params, version, compute, root=None):
    """Return the dict of arrays ``compute()`` makes, computing it only once.

    Parameters
    ----------
    stage : str
        Name of the stage, also the sub-folder of the cache.
    params : dict
        Everything that determines the result.
    version : str
        Bump it when the code that computes the stage changes.
    compute : callable
        Returns a dict of numpy arrays.
    root : path, optional
        Cache folder; defaults to :func:`brainldm.settings.cache_dir`.

    Returns
    -------
    arrays : dict of str to ndarray
    """
    path = Path(cache_dir(root)) / stage / f"{cache_key(stage, params, version)}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    arrays = compute()

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)
    return arrays
