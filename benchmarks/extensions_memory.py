"""Peak host memory of decoding the report's extensions (+T, +D, +G) for one NSD subject.

On NSD one subject has 24,980 single training trials of 8,859 images and 982 test images,
and every image has 2,817,792 extension targets: BLIP's ViT features (443,136), DPT-large's
hidden states (2,363,392) and AlexNet's pooled early, middle and late layers (11,264). Held
in memory per trial that is about 585 GB. The book decodes them with
:func:`brainldm.fit.decoding.decode_tables` (what :func:`brainldm.generate.extensions.decode_extensions`
calls once the feature tables are cached): the targets are memory-mapped tables with one
row per image, the ridge fit runs a chunk of targets at a time on the fold decompositions
of ``X`` computed once, and predictions are written to a memory-mapped file as they come.

The feature models are not run here (DPT-large and BLIP on thousands of images would take
hours on a CPU and their weights may be absent): synthetic tables of the real widths stand
in for them, made of a few image factors that the synthetic betas also carry, so that the
decoders have something to find. Each measured point runs the real decoding path in a
fresh child process and reports that process' peak resident memory (``VmHWM`` of
``/proc/self/status``, pages of memory-mapped files included; not ``ru_maxrss`` of the
child, which counts the parent's pages the child shared between fork and exec):

* one point decodes all 2,817,792 targets from few voxels and trials: memory does not grow
  with the number of targets;
* the others decode one chunk of targets (parts of every table) from more voxels and
  trials (more trials than voxels, as on NSD, so that the same primal solver runs), to
  check the formula's terms in ``X`` and in ``n_voxels**2``.

The peak at NSD's size is extrapolated with a formula of the arrays alive at the two
candidate peaks (the last eigendecomposition, and the fit of one chunk of targets) that the
script prints term by term, plus the largest excess of a measured peak over the formula.

    python benchmarks/extensions_memory.py [--quick]   # last line: JSON

``--quick`` (a few minutes on 2 cores) keeps the voxel counts small; the default also
decodes from NSD's 15,724 voxels of the report's ROIs (16,919 trials: on 2 cores about an
hour, and 11 GB).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GB = 1e9
#: one NSD subject (subj01, 37 public sessions) and the report's ROIs
NSD = {"n_trials": 24980, "n_images": 8859, "n_test": 982, "n_voxels": 15724}
#: targets per image: BLIP ViT-B (577 tokens x 768), DPT-large (4 hidden states of 577 x 1024),
#: AlexNet pooled to 4 x 4 (64, 384 and 256 channels)
WIDTHS = {"caption": 443136, "depth": 2363392, "structure.early": 1024, "structure.middle": 6144,
          "structure.late": 4096}
#: one chunk of targets (4,096) from every table, for the points that check the terms in X
FEW = {"caption": 1024, "depth": 2048, "structure.early": 256, "structure.middle": 512, "structure.late": 256}
N_FACTORS = 8  # image factors shared by the betas and the targets
QUICK_POINTS = [
    {"n_voxels": 50, "n_images": 30, "n_test": 10, "targets": "all"},
    {"n_voxels": 2000, "n_images": 1000, "n_test": 100, "targets": "few"},
    {"n_voxels": 3000, "n_images": 1600, "n_test": 100, "targets": "few"},
    {"n_voxels": 4000, "n_images": 1600, "n_test": 100, "targets": "few"},
]
FULL_POINTS = [
    {"n_voxels": 200, "n_images": 100, "n_test": 20, "targets": "all"},
    {"n_voxels": 8000, "n_images": 3000, "n_test": 200, "targets": "few"},
    {"n_voxels": NSD["n_voxels"], "n_images": 6000, "n_test": 200, "targets": "few"},
]


def n_trials(n_images):
    """Single trials of ``n_images`` training images at NSD's rate (24,980 / 8,859 = 2.82 per image)."""
    return int(round(n_images * NSD["n_trials"] / NSD["n_images"]))


# --- the formula ----------------------------------------------------------------------------------

def ridge_constants():
    """Chunk size, folds and alphas of the fit the book runs (GroupRidgeCV's defaults)."""
    from brainldm.fit.ridge import GroupRidgeCV, RidgeRecipe

    recipe = RidgeRecipe()
    return {"chunk": int(GroupRidgeCV().chunk_size), "folds": recipe.n_folds, "alphas": len(recipe.alphas)}


FORMULA = """peak = base + X_test + max(decompositions, chunks)
  base           = resident memory of Python with numpy, torch and brainldm imported (measured)
  X_test         = 2 * 4 * e * v              the test betas and their standardised copy
  decompositions = 3 * 4 * t * v              X, its standardised copy, every fold's X_val @ V
                 + 4 * (t / F) * v            one fold's validation rows
                 + (F + 3) * 4 * v**2         F fold eigenvector matrices, the Gram matrix (decomposed
                                              in place last) and LAPACK's workspace (2 v**2)
  chunks         = 3 * 4 * t * v + 4 * (t / F) * v + (F + 1) * 4 * v**2
                                              the same, with the full-data eigenvectors
                 + 2 * 4 * t * c              one chunk of Y for the trials, read and copied
                 + 4 * 4 * v * c              X'Y, B and the weights of a chunk, and a temporary
                 + 2 * 4 * e * c              one chunk of predictions
                 + T * (8 + 4 * a + 1)        every target's alpha, CV scores and constant flag
  (t trials, e test images, v voxels, T targets, c = {chunk} targets per chunk, F = {folds} folds,
   a = {alphas} alphas; 4 bytes per float32)"""


def formula_terms(t, e, v, T, chunk, folds, alphas):
    """The formula's terms in bytes (without ``base``)."""
    shared = {"X, standardised X, folds' X_val @ V": 3 * 4 * t * v, "one fold's validation rows": 4 * (t / folds) * v}
    decompositions = {**shared, "fold eigenvectors, Gram, LAPACK workspace": (folds + 3) * 4 * v ** 2}
    chunks = {**shared, "fold and full eigenvectors": (folds + 1) * 4 * v ** 2,
              "one chunk of Y for the trials": 2 * 4 * t * chunk,
              "X'Y, B, weights": 4 * 4 * v * chunk,
              "one chunk of predictions": 2 * 4 * e * chunk,
              "alphas, CV scores, constant flags": T * (8 + 4 * alphas + 1)}
    return {"X_test": 2 * 4 * e * v, "decompositions": decompositions, "chunks": chunks}


def formula_bytes(t, e, v, T, chunk, folds, alphas):
    """The formula's peak in bytes (without ``base``) and the phase that sets it."""
    terms = formula_terms(t, e, v, T, chunk, folds, alphas)
    phases = {phase: sum(terms[phase].values()) for phase in ("decompositions", "chunks")}
    phase = max(phases, key=phases.get)
    return terms["X_test"] + phases[phase], phase


# --- synthetic data -------------------------------------------------------------------------------

def fabricate(folder, n_images, n_test, widths, seed=0):
    """Per-image target tables (train and test) of ``widths`` and the image factors behind them.

    Written a block of rows at a time through short-lived mappings, so this process stays small.
    """
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n_images + n_test, N_FACTORS), dtype=np.float32)
    np.save(folder / "factors.npy", factors)
    for name, width in widths.items():
        loadings = rng.standard_normal((N_FACTORS, width), dtype=np.float32) / np.sqrt(N_FACTORS)
        for split, rows in (("train", np.arange(n_images)), ("test", np.arange(n_images, n_images + n_test))):
            path = folder / f"{split}.{name}.npy"
            np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(rows), width))
            step = max(1, int(2e8 // (4 * width)))
            for start in range(0, len(rows), step):
                block = factors[rows[start:start + step]] @ loadings
                block += rng.standard_normal(block.shape, dtype=np.float32)
                table = np.load(path, mmap_mode="r+")
                table[start:start + len(block)] = block
                table.flush()
                del table


def _status_gb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) * 1024 / GB


def decode_point(folder, n_voxels, n_test, seed=0):
    """In this (child) process: betas for the fabricated tables, then the book's streamed decoding."""
    os.environ["BRAINLDM_CACHE"] = str(folder / "cache")
    os.environ.setdefault("TQDM_DISABLE", "1")
    from brainldm.fit.decoding import TableSplit, decode_tables
    from brainldm.generate.extensions import REPORT_ROIS

    base = _status_gb("VmRSS")
    factors = np.load(folder / "factors.npy")
    n_images = len(factors) - n_test
    rng = np.random.default_rng(seed + 1)
    repeats = np.full(n_images, 3)
    repeats[rng.choice(n_images, 3 * n_images - n_trials(n_images), replace=False)] = 2
    rows = rng.permutation(np.repeat(np.arange(n_images), repeats))  # trials in shuffled order, as in NSD
    mixing = rng.standard_normal((N_FACTORS, n_voxels), dtype=np.float32)
    X = factors[rows] @ mixing
    X += 2.0 * rng.standard_normal(X.shape, dtype=np.float32)
    X_test = factors[n_images:] @ mixing
    X_test += (2.0 / np.sqrt(3)) * rng.standard_normal(X_test.shape, dtype=np.float32)
    names = [p.name[len("train."):-len(".npy")] for p in sorted(folder.glob("train.*.npy"))]
    tables = {name: np.load(folder / f"train.{name}.npy", mmap_mode="r") for name in names}
    test_tables = {name: np.load(folder / f"test.{name}.npy", mmap_mode="r") for name in names}
    start = time.perf_counter()
    decoded = decode_tables(TableSplit(X, rows, tables, rows),
                            TableSplit(X_test, np.arange(n_test), test_tables, np.arange(n_test)),
                            "extension_decoding", "benchmark", roi=list(REPORT_ROIS), stream_above=0)
    seconds = time.perf_counter() - start
    return {"n_trials": len(rows), "n_test": n_test, "n_voxels": n_voxels,
            "n_targets": int(sum(t.shape[1] for t in tables.values())), "seconds": seconds,
            "base_rss_gb": base, "peak_rss_gb": _status_gb("VmHWM"),
            "streamed": all(isinstance(d.predicted, np.memmap) for d in decoded.values()),
            "mean_r": {name: d.mean_r() for name, d in decoded.items()}}


def run_point(point, seed=0):
    """Fabricate the tables of ``point`` and decode them in a child process; return the child's report."""
    widths = WIDTHS if point["targets"] == "all" else FEW
    folder = Path(tempfile.mkdtemp(prefix="brainldm_extensions_memory_", dir=os.environ.get("TMPDIR", "/tmp")))
    try:
        start = time.perf_counter()
        fabricate(folder, point["n_images"], point["n_test"], widths, seed)
        fabricated = time.perf_counter() - start
        command = [sys.executable, __file__, "--child", str(folder), str(point["n_voxels"]), str(point["n_test"])]
        # all targets from few voxels: hundreds of chunks of tiny arrays, where a second thread only adds waits
        env = {**os.environ, "OMP_NUM_THREADS": "1"} if point["targets"] == "all" else None
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {**json.loads(output.strip().splitlines()[-1]), "targets": point["targets"],
            "fabricate_seconds": fabricated}


# --- the measurement ------------------------------------------------------------------------------

def measure(quick=True, log=None):
    """Measure the points and extrapolate the peak to one NSD subject.

    Parameters
    ----------
    quick : bool
        Small voxel counts (a few minutes on 2 cores) instead of NSD's 15,724 voxels.
    log : callable, optional
        Called with a line of text per step (default: print to stderr).

    Returns
    -------
    result : dict
        ``extensions_peak_gb`` (the extrapolated NSD peak), ``formula`` (text), ``nsd_terms_gb``,
        ``points`` (each measured point with its formula value) and the sizes used.
    """
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    constants = ridge_constants()
    n_targets = sum(WIDTHS.values())
    points = []
    for point in QUICK_POINTS if quick else FULL_POINTS:
        report = run_point(point)
        model, phase = formula_bytes(report["n_trials"], report["n_test"], report["n_voxels"], report["n_targets"],
                                     **constants)
        report.update(formula_gb=report["base_rss_gb"] + model / GB, formula_phase=phase)
        report["excess_gb"] = report["peak_rss_gb"] - report["formula_gb"]
        points.append(report)
        log(f"  {report['n_trials']:6d} trials x {report['n_voxels']:5d} voxels -> {report['n_targets']:7d} targets "
            f"({report['n_test']} test): peak {report['peak_rss_gb']:.2f} GB, formula {report['formula_gb']:.2f} GB "
            f"({phase}), {report['seconds']:.0f} s, streamed {report['streamed']}")
    t, e, v = NSD["n_trials"], NSD["n_test"], NSD["n_voxels"]
    terms = formula_terms(t, e, v, n_targets, **constants)
    model, phase = formula_bytes(t, e, v, n_targets, **constants)
    base = max(p["base_rss_gb"] for p in points)
    excess = max(0.0, max(p["excess_gb"] for p in points))
    peak = base + model / GB + excess
    return {
        "extensions_peak_gb": peak,
        "limit_gb": 16.0,
        "within_limit": bool(peak <= 16.0),
        "quick": quick,
        "nsd": {**NSD, "n_targets": n_targets, "widths": WIDTHS},
        "ridge": constants,
        "formula": FORMULA.format(**constants),
        "extrapolation": (f"{base:.2f} GB base + {model / GB:.2f} GB formula ({phase}) + {excess:.2f} GB "
                          "largest excess of a measured peak over the formula"),
        "nsd_terms_gb": {"base": base, "X_test": terms["X_test"] / GB,
                         **{f"{p}: {k}": b / GB for p in ("decompositions", "chunks") for k, b in terms[p].items()}},
        "nsd_peak_phase": phase,
        "targets_note": ("synthetic target tables of the real widths (8 image factors + noise) stand in for the "
                         "feature models, which are not run; the decoding path is the book's (decode_tables)"),
        "points": points,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small voxel counts: a few minutes on 2 cores")
    parser.add_argument("--child", nargs=3, metavar=("FOLDER", "VOXELS", "TEST"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        folder, n_voxels, n_test = args.child
        print(json.dumps(decode_point(Path(folder), int(n_voxels), int(n_test))))
        return
    start = time.perf_counter()
    result = measure(quick=args.quick)
    result["seconds"] = time.perf_counter() - start
    print("| trials | voxels | targets | test | peak RSS GB | formula GB | excess GB | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for q in result["points"]:
        print(f"| {q['n_trials']} | {q['n_voxels']} | {q['n_targets']} | {q['n_test']} | {q['peak_rss_gb']:.2f} "
              f"| {q['formula_gb']:.2f} | {q['excess_gb']:+.2f} | {q['seconds']:.0f} |")
    print(result["formula"])
    print("at NSD's size (GB):")
    for name, value in result["nsd_terms_gb"].items():
        print(f"  {value:7.2f}  {name}")
    print(f"extensions peak: {result['extrapolation']} = {result['extensions_peak_gb']:.2f} GB "
          f"(limit {result['limit_gb']:.0f} GB)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
