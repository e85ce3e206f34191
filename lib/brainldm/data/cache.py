"""An on-disk cache for expensive stages, keyed by everything that determines them.

A stage's result is stored under ``<cache>/<stage>/<digest>.npz`` where the
digest hashes the stage name, its parameters and a code version. Writes go to a
temporary file that is renamed into place, so a crash never leaves half a result
and two processes never read a partial file. Each entry holds its key and is checked
when read (zip CRC-32 of every array, sizes of every file of a folder): a damaged or
foreign entry is reported with its path, deleted and recomputed. One process computes a
key at a time (``fcntl`` lock files); a cache that cannot be written costs only speed.

Results too large for memory (the extensions' targets and predictions on NSD)
are folders of ``.npy`` files instead, ``<cache>/<stage>/<digest>/<name>.npy``,
written piece by piece into a temporary folder that is renamed into place and
returned memory-mapped (:func:`cached_memmaps`); :class:`ColumnBlocks` reads
and writes them a chunk of columns at a time.
"""

import contextlib
import fcntl
import hashlib
import json
import mmap
import os
import shutil
import tempfile
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from brainldm.errors import BrainLDMError, CacheError
from brainldm.settings import cache_dir

__all__ = ["cache_key", "array_digest", "cached_arrays", "cached_memmaps", "atomic_write", "ColumnBlocks",
           "file_lock", "clean_stale", "CacheWarning"]


class CacheWarning(UserWarning):
    """A cache entry was unusable (and is recomputed), or a result could not be cached."""


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


#: temporary files and folders of writers that died are removed once they are this old (seconds)
STALE_AGE = 3600.0
#: the member of every ``.npz`` entry (and field of every folder's manifest) that holds its key
KEY_MEMBER = "__key__"
#: the manifest of a :func:`cached_memmaps` folder: its key and the size of each file
MANIFEST = "__manifest__.json"
_CACHE_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error, json.JSONDecodeError)
_umask = None


def _permissions(folder=False):
    """The mode a new file (or folder) gets under the process' umask (mkstemp and mkdtemp use 0600 / 0700)."""
    global _umask
    if _umask is None:
        _umask = os.umask(0o022)
        os.umask(_umask)
    return (0o777 if folder else 0o666) & ~_umask


def _lock_path(path):
    path = Path(path)
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def file_lock(path, shared=False):
    """Hold an ``fcntl.flock`` lock on the file ``path`` (created if needed) for the ``with`` block.

    Blocks until the lock is free. Where the lock file cannot be created (a read-only
    folder), the block runs without a lock: nothing can be written there anyway.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, _permissions())
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def _is_locked(lock):
    """Whether another process holds ``lock`` (a lock file) right now."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def clean_stale(folder, max_age=None):
    """Remove the temporary files and folders (``.*.tmp``) of writers that died, in ``folder``.

    A temporary entry goes when it is older than ``max_age`` seconds (:data:`STALE_AGE`) and no
    process holds the lock of the entry it was to become.
    """
    max_age = STALE_AGE if max_age is None else max_age
    now = time.time()
    try:
        candidates = list(Path(folder).glob(".*.tmp"))
    except OSError:
        return
    for tmp in candidates:
        try:
            if now - tmp.lstat().st_mtime < max_age:
                continue
            target = tmp.name[1:-len(".tmp")].rsplit(".", 1)[0]
            if _is_locked(Path(folder) / f".{target}.lock"):
                continue
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()
        except OSError:
            pass


def atomic_write(path, write, folder=False):
    """Call ``write(tmp_path)`` then rename the temporary file (or folder) to ``path``.

    With ``folder=True``, ``tmp_path`` is an empty folder for ``write`` to fill; if another
    process renamed its own folder to ``path`` first, that one is kept. The entry gets the
    permissions of the umask, like any new file; temporary entries of writers that died
    (older than :data:`STALE_AGE`) are removed from the folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent)
    prefix, suffix = f".{path.name}.", ".tmp"
    if folder:
        tmp = tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=suffix)
    else:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
        os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _permissions(folder))
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


def _discard(path, reason):
    """Warn that the cache entry ``path`` is unusable and delete it (if the folder allows)."""
    warnings.warn(f"cache entry {path} is {reason}; it is deleted and computed again", CacheWarning, stacklevel=3)
    try:
        if Path(path).is_dir():
            shutil.rmtree(path)
        else:
            Path(path).unlink()
    except FileNotFoundError:
        pass
    except OSError as error:
        warnings.warn(f"could not delete {path}: {error}", CacheWarning, stacklevel=3)


def _read_arrays(path, key):
    """The arrays of the entry ``path`` if it is complete and was written under ``key``, else None.

    Every member is read to its end, so that the zip format's CRC-32 of each array is checked.
    """
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except _CACHE_READ_ERRORS as error:
        _discard(path, f"damaged ({type(error).__name__}: {error})")
        return None
    found = arrays.pop(KEY_MEMBER, None)
    if found is None:  # written before entries held their key: recomputed once, quietly
        _discard_quietly(path)
        return None
    if str(found) != key:
        _discard(path, f"stored under the wrong key (it holds the entry {str(found)!r})")
        return None
    return arrays


def _discard_quietly(path):
    try:
        Path(path).unlink()
    except OSError:
        pass


def _cache_write_failed(path, error):
    warnings.warn(f"could not write the cache entry {path} ({type(error).__name__}: {error}); the result is "
                  "used without being cached", CacheWarning, stacklevel=3)


def cached_arrays(stage, params, version, compute, root=None):
    """Return the dict of arrays ``compute()`` makes, computing it only once.

    Each entry holds its key (member :data:`KEY_MEMBER`) besides the arrays; an entry that is
    damaged (truncated, garbage, a CRC-32 that does not match) or holds another key is reported
    with a :class:`CacheWarning` naming its path, deleted and computed again. One process
    computes a key at a time (a lock file beside the entry); others wait and read its result.
    If the entry cannot be written (a read-only or full disk), the result is returned with a warning.

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
    key = cache_key(stage, params, version)
    path = Path(cache_dir(root)) / stage / f"{key}.npz"
    arrays = _read_arrays(path, key)
    if arrays is not None:
        return arrays
    with file_lock(_lock_path(path)):
        arrays = _read_arrays(path, key)  # another process may have written it while this one waited
        if arrays is not None:
            return arrays
        arrays = compute()
        if KEY_MEMBER in arrays:
            raise CacheError(f"stage {stage!r} returned an array named {KEY_MEMBER!r}, which the cache reserves")

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays, **{KEY_MEMBER: np.array(key)})

        try:
            atomic_write(path, write)
        except OSError as error:
            _cache_write_failed(path, error)
    return arrays


def _read_memmaps(folder, key):
    """The memory-mapped files of the folder entry if its manifest matches ``key`` and the files, else None."""
    if not folder.exists():
        return None
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("key") != key:
            _discard(folder, f"stored under the wrong key (its manifest names {manifest.get('key')!r})")
            return None
        arrays = {}
        for name, size in manifest["files"].items():
            path = folder / f"{name}.npy"
            if path.stat().st_size != size:
                raise ValueError(f"{path.name} has {path.stat().st_size} bytes, the manifest says {size}")
            arrays[name] = np.load(path, mmap_mode="r")
        return arrays
    except _CACHE_READ_ERRORS as error:
        _discard(folder, f"damaged ({type(error).__name__}: {error})")
        return None


def cached_memmaps(stage, params, version, compute, root=None):
    """Return the ``.npy`` files ``compute(folder)`` writes, memory-mapped, computing them only once.

    For results too large for memory: ``compute`` writes them piece by piece (e.g. into
    :func:`numpy.lib.format.open_memmap` files, through :class:`ColumnBlocks`) into a
    temporary folder, which is renamed into place once complete, with a manifest
    (:data:`MANIFEST`: the key and each file's size). A folder whose manifest is missing, names
    another key or other sizes is reported, deleted and computed again, as in :func:`cached_arrays`.

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
    key = cache_key(stage, params, version)
    folder = Path(cache_dir(root)) / stage / key
    arrays = _read_memmaps(folder, key)
    if arrays is not None:
        return arrays

    def write(tmp):
        tmp = Path(tmp)
        compute(tmp)
        files = {p.name[:-len(".npy")]: p.stat().st_size for p in sorted(tmp.glob("*.npy"))}
        (tmp / MANIFEST).write_text(json.dumps({"key": key, "stage": stage, "files": files}))

    with file_lock(_lock_path(folder)):
        arrays = _read_memmaps(folder, key)
        if arrays is not None:
            return arrays
        try:
            atomic_write(folder, write, folder=True)
        except OSError as error:
            # the result exists only in the temporary folder, which is gone: compute it into one that stays
            _cache_write_failed(folder, error)
            tmp = Path(tempfile.mkdtemp(prefix=f"brainldm-{stage}-"))
            compute(tmp)
            return {p.name[:-len(".npy")]: np.load(p, mmap_mode="r") for p in sorted(tmp.glob("*.npy"))}
        arrays = _read_memmaps(folder, key)
    if arrays is None:
        raise CacheError(f"the cache entry {folder} was written but cannot be read back")
    return arrays


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
