"""An on-disk cache for expensive stages, keyed by everything that determines them.

A stage's result is stored under ``<cache>/<stage>/<digest>.npz`` where the
digest hashes the stage name, its parameters and a code version. Writes go to a
temporary file that is renamed into place, so a crash never leaves half a result
and two processes never read a partial file.

Results too large for memory (the extensions' targets and predictions on NSD)
are folders of ``.npy`` files instead, ``<cache>/<stage>/<digest>/<name>.npy``,
written piece by piece into a temporary folder that is renamed into place and
returned memory-mapped (:func:`cached_memmaps`); :class:`ColumnBlocks` reads
and writes them a chunk of columns at a time.
"""

import hashlib
import json
import mmap
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .errors import BrainLDMError
from .settings import cache_dir

__all__ = ["cache_key", "array_digest", "cached_arrays", "cached_memmaps", "atomic_write", "ColumnBlocks"]


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


def atomic_write(path, write, folder=False):
    """Call ``write(tmp_path)`` then rename the temporary file (or folder) to ``path``.

    With ``folder=True``, ``tmp_path`` is an empty folder for ``write`` to fill; if another
    process renamed its own folder to ``path`` first, that one is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = f".{path.name}.", ".tmp"
    if folder:
        tmp = tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=suffix)
    else:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
        os.close(fd)
    try:
        write(tmp)
        try:
            os.replace(tmp, path)
        except OSError:
            if not (folder and path.is_dir()):  # a folder renamed into place by another process is kept
                raise
    finally:
        if folder:
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
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


def cached_memmaps(stage, params, version, compute, root=None):
    """Return the ``.npy`` files ``compute(folder)`` writes, memory-mapped, computing them only once.

    For results too large for memory: ``compute`` writes them piece by piece (e.g. into
    :func:`numpy.lib.format.open_memmap` files, through :class:`ColumnBlocks`) into a
    temporary folder, which is renamed into place once complete.

    Parameters
    ----------
    stage, params, version, root
        As for :func:`cached_arrays`.
    compute : callable
        ``compute(folder)`` writes ``<name>.npy`` files into the :class:`pathlib.Path` ``folder``.

    Returns
    -------
    arrays : dict of str to numpy.memmap
        Read-only (``np.load(path, mmap_mode="r")``), by file name without ``.npy``.
    """
    folder = Path(cache_dir(root)) / stage / cache_key(stage, params, version)
    if not folder.is_dir():
        atomic_write(folder, lambda tmp: compute(Path(tmp)), folder=True)
    return {path.name[:-len(".npy")]: np.load(path, mmap_mode="r") for path in sorted(folder.glob("*.npy"))}


def _remap(block, mode):
    """A fresh mapping of ``block`` if it is a whole memory-mapped file, else ``block`` itself.

    The pages read or written through a mapping count in the process' resident memory
    until it is unmapped; reading a 100 GB file through one mapping would grow it to the
    machine's free memory. A fresh mapping per access is unmapped when dropped.
    """
    if isinstance(block, np.memmap) and isinstance(block.base, mmap.mmap):
        order = "F" if block.flags.f_contiguous and not block.flags.c_contiguous else "C"
        return np.memmap(block.filename, dtype=block.dtype, mode=mode, offset=block.offset, shape=block.shape,
                         order=order)
    return block


class ColumnBlocks:
    """Two-dimensional arrays side by side, read and written a chunk of columns at a time.

    ``blocks[k][:, j]`` is column ``offset_k + j`` of the whole; with ``rows``, row ``i`` of
    the whole is row ``rows[i]`` of the blocks (e.g. the image of each trial, so that a
    table with one row per image serves every trial without a copy per trial). Blocks
    that are memory-mapped files (as :func:`cached_memmaps` returns) are mapped anew for
    every access, so that only the chunk at hand occupies memory.

    Parameters
    ----------
    blocks : list of arrays of shape (n_rows, d_k)
    rows : int array of shape (n,), optional

    Attributes
    ----------
    shape : tuple
        ``(n, sum of d_k)``; ``n`` is ``len(rows)``, else the blocks' number of rows.
    slices : list of slice
        The columns of each block in the whole.

    Examples
    --------
    >>> Y = ColumnBlocks([caption, depth], rows=trial_rows)  # doctest: +SKIP
    >>> chunk = Y[:, 4096:8192]  # an in-memory array (n, 4096)  # doctest: +SKIP
    """

    ndim = 2

    def __init__(self, blocks, rows=None):
        self.blocks = list(blocks)
        n_rows = {np.shape(b)[0] for b in self.blocks}
        if not self.blocks or any(np.ndim(b) != 2 for b in self.blocks) or len(n_rows) != 1:
            raise BrainLDMError(f"ColumnBlocks needs 2-D arrays with the same number of rows; found shapes "
                                f"{[np.shape(b) for b in self.blocks]}")
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        ends = np.cumsum([b.shape[1] for b in self.blocks])
        self.slices = [slice(int(end - b.shape[1]), int(end)) for b, end in zip(self.blocks, ends)]
        self.shape = (n_rows.pop() if self.rows is None else len(self.rows), int(ends[-1]))
        self.dtype = np.result_type(*[b.dtype for b in self.blocks])

    def _pieces(self, key):
        """The blocks that columns ``key[1]`` span: (block, columns in the block, columns in the chunk)."""
        rows, cols = key if isinstance(key, tuple) and len(key) == 2 else (None, None)
        if not (isinstance(rows, slice) and rows == slice(None) and isinstance(cols, slice) and cols.step in (None, 1)):
            raise BrainLDMError(f"ColumnBlocks are indexed [:, start:stop]; found {key!r}")
        start, stop, _ = cols.indices(self.shape[1])
        for block, span in zip(self.blocks, self.slices):
            lo, hi = max(start, span.start), min(stop, span.stop)
            if lo < hi:
                yield block, slice(lo - span.start, hi - span.start), slice(lo - start, hi - start)

    def __getitem__(self, key):
        parts = []
        for block, cols, _ in self._pieces(key):
            source = _remap(block, "r")[:, cols]
            parts.append(np.array(source) if self.rows is None else source[self.rows])
        if not parts:
            return np.empty((self.shape[0], 0), dtype=self.dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def __setitem__(self, key, values):
        if self.rows is not None:
            raise BrainLDMError("ColumnBlocks with rows are read-only")
        for block, cols, part in self._pieces(key):
            target = _remap(block, "r+")
            target[:, cols] = values[:, part]
            if isinstance(target, np.memmap):
                target.flush()

    @property
    def cache_token(self):
        """Identifies the contents: each memory-mapped file by its path, size and modification time, each
        in-memory block by :func:`array_digest`, and ``rows``."""
        parts = []
        for block in self.blocks:
            if isinstance(block, np.memmap) and isinstance(block.base, mmap.mmap):
                stat = os.stat(block.filename)
                parts.append([str(Path(block.filename).resolve()), stat.st_size, stat.st_mtime_ns, block.offset,
                              list(block.shape), str(block.dtype)])
            else:
                parts.append(array_digest(block))
        parts.append(None if self.rows is None else array_digest(self.rows))
        return cache_key("ColumnBlocks", parts, "")
