import os
from pathlib import Path

import numpy as np

from brainldm.data import cache
from brainldm import settings


def test_resolver_prefers_argument_then_environment_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAINLDM_DATA", str(tmp_path / "env"))
    assert settings.data_home(tmp_path / "arg") == tmp_path / "arg"
    assert settings.data_home() == tmp_path / "env"
    assert settings.cache_dir() == tmp_path / "env" / "cache"
    monkeypatch.setenv("BRAINLDM_CACHE", str(tmp_path / "c"))
    assert settings.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("BRAINLDM_DATA")
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    assert settings.data_home() == tmp_path / "home" / "brainldm_data"
    assert settings.nsd_root() == tmp_path / "home" / "brainldm_data" / "nsd"


def test_importing_brainldm_makes_hugging_face_offline():
    import brainldm  # noqa: F401

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_cache_computes_once_and_keys_on_parameters(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3)}

    for _ in range(2):
        out = cache.cached_arrays("stage", {"a": 1}, "v1", compute, root=tmp_path)
    np.testing.assert_array_equal(out["x"], [0, 1, 2])
    assert len(calls) == 1
    cache.cached_arrays("stage", {"a": 2}, "v1", compute, root=tmp_path)
    cache.cached_arrays("stage", {"a": 1}, "v2", compute, root=tmp_path)
    assert len(calls) == 3


def test_failed_computation_leaves_nothing_in_the_cache(tmp_path):
    def broken(tmp):
        Path(tmp).write_text("half")
        raise RuntimeError("disk full")

    try:
        cache.atomic_write(tmp_path / "result.npz", broken)
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []


def test_array_digest_follows_contents_shape_and_dtype():
    a = np.arange(6, dtype=np.float32)
    assert cache.array_digest(a) == cache.array_digest(a.copy())
    assert cache.array_digest(a) != cache.array_digest(a.reshape(2, 3))
    assert cache.array_digest(a) != cache.array_digest(a.astype(np.float64))
    b = a.copy()
    b[3] += 1
    assert cache.array_digest(a) != cache.array_digest(b)


_KEPT = """
import os, sys
import numpy as np
if sys.argv[1] == "import":
    import brainldm  # noqa: F401  (tunes the allocator)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = rss()
block = np.ones(8 * 2**20)  # 64 MB, written, then freed, like one batch's activations
del block
print((rss() - before) / 2**20)
"""


def _kept_megabytes(mode, **environ):
    """MB of a freed 64 MB block that a child process keeps resident (for its next allocation)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _KEPT, mode], capture_output=True, text=True, check=True,
                          env={**os.environ, **environ})
    return float(done.stdout.split()[-1])


def test_importing_brainldm_keeps_freed_memory_for_reuse_even_under_dasks_trim_setting():
    from brainldm.settings import tune_allocator

    dask = {"MALLOC_TRIM_THRESHOLD_": "65536"}  # what a Dask nanny gives its workers (and their kernels)
    # glibc unmaps the freed block (the next step gets fresh zeroed pages: page faults, kernel time) ...
    assert _kept_megabytes("plain", **dask) < 8
    # ... tuned, it stays in the heap for the next step
    assert _kept_megabytes("import", **dask) > 56
    assert _kept_megabytes("import", BRAINLDM_ALLOCATOR="glibc", **dask) < 8  # the opt-out
    assert tune_allocator() is True
