"""Benchmark: brainldm's GroupRidgeCV against Takagi & Nishimoto's decoding recipe.

Takagi's recipe (yu-takagi/StableDiffusionReconstruction, ``codes/utils/ridge.py``) for
``z`` and ``c``: ``make_pipeline(StandardScaler(), himalaya.ridge.RidgeCV(alphas=[1e-6,
1e-5, ..., 1]))`` on the numpy backend, with himalaya's defaults (5-fold ``KFold``
without shuffling or groups, ``fit_intercept=False``, SVD solver), fitted on single
trials and applied to repeat-averaged test betas.

Both methods see the same simulated NSD-scale data (a known linear map plus noise,
seeded) and the same alpha grid; each runs in its own subprocess, so that its peak
resident memory (``ru_maxrss`` of that child, from ``os.wait4``) and wall time are its
own. The data are written once to ``.npy`` files and loaded whole by each child, as the
recipe loads its ``.npy`` files. Reported per feature (``z``, ``c``): wall time, peak
memory, and the agreement of the two methods' test predictions (Pearson r of the
flattened predictions, centred per target: the recipe fits no intercept, so its
predictions lack every target's mean; the raw r is reported beside it).

If the recipe would not fit in memory or time at ``c``'s full 59,136 targets, both
methods run on the first ``--c-fraction`` of ``c``'s targets and the wall time is
extrapolated linearly in targets (the cost of both methods is dominated by terms
linear in targets; peak memory is reported as measured).

Usage::

    python benchmarks/ridge.py --quick          # reduced sizes, under a minute
    nohup nice -n 10 python benchmarks/ridge.py > ridge_bench.log 2>&1 &

The last line of output is JSON.
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

TAKAGI_ALPHAS = np.logspace(-6, 0, 7)  # [1e-6, ..., 1] for 'c' and 'init_latent' (z) in their ridge.py

FULL = dict(n_images=8859, n_short=1597, n_test=982, n_voxels=4000, n_z=6400, n_c=59136, n_latent=256)
QUICK = dict(n_images=600, n_short=100, n_test=100, n_voxels=300, n_z=400, n_c=1200, n_latent=32)


# --- data --------------------------------------------------------------------------------
def simulate(data_dir, sizes, c_targets, seed=0):
    """Write seeded NSD-like single trials, repeat-averaged test betas and two features to ``data_dir``.

    Image ``i`` has latent factors ``F[i]`` (n_latent,); a trial's betas are ``F[i] @ Mx`` plus
    trial noise (3 repeats per image, 2 for ``n_short`` images, in shuffled order as in NSD);
    a feature is ``F[i] @ My`` plus image-specific noise (the same on every repeat).
    """
    rng = np.random.default_rng(seed)
    n_img, n_test, k = sizes["n_images"], sizes["n_test"], sizes["n_latent"]
    repeats = np.full(n_img, 3)
    repeats[rng.choice(n_img, sizes["n_short"], replace=False)] = 2
    ids = rng.permutation(np.repeat(np.arange(n_img), repeats))
    F = rng.standard_normal((n_img + n_test, k), dtype=np.float32)
    Mx = rng.standard_normal((k, sizes["n_voxels"]), dtype=np.float32) / np.sqrt(k)
    X = F[ids] @ Mx + 1.5 * rng.standard_normal((ids.size, sizes["n_voxels"]), dtype=np.float32)
    X_test = F[n_img:] @ Mx + 1.5 / np.sqrt(3) * rng.standard_normal((n_test, sizes["n_voxels"]), dtype=np.float32)
    np.save(data_dir / "X.npy", X.astype(np.float32))  # the recipe loads float32 betas
    np.save(data_dir / "ids.npy", ids)
    np.save(data_dir / "X_test.npy", X_test.astype(np.float32))
    del X
    for name, n_targets in (("z", sizes["n_z"]), ("c", c_targets)):
        My = rng.standard_normal((k, n_targets), dtype=np.float32) / np.sqrt(k)
        Y_img = F @ My + rng.standard_normal((n_img + n_test, n_targets), dtype=np.float32)
        Y_img += rng.standard_normal(n_targets, dtype=np.float32)  # features have nonzero means
        Y = np.lib.format.open_memmap(data_dir / f"Y_{name}.npy", mode="w+", dtype=np.float32,
                                      shape=(ids.size, n_targets))
        for start in range(0, ids.size, 2048):
            Y[start:start + 2048] = Y_img[ids[start:start + 2048]]
        Y.flush()
        del Y
        np.save(data_dir / f"Y_{name}_test.npy", Y_img[n_img:].astype(np.float32))


# --- one method in one child process ------------------------------------------------------
def run_method(method, data_dir, feature):
    """Fit ``method`` on ``feature``, predict the test set; print wall time and memory as JSON."""
    X, ids = np.load(data_dir / "X.npy"), np.load(data_dir / "ids.npy")
    X_test = np.load(data_dir / "X_test.npy")
    Y = np.load(data_dir / f"Y_{feature}.npy")
    model, fit_kwargs = make_model(method, ids)
    before_fit_kb = _rss_kb()  # data and imported libraries
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(X, Y, **fit_kwargs)
    Y_pred = model.predict(X_test)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    np.save(data_dir / f"pred_{method}_{feature}.npy", np.asarray(Y_pred, dtype=np.float32))
    print(json.dumps(dict(seconds=seconds, cpu_seconds=cpu_seconds, rss_before_fit_gb=before_fit_kb / 2**20, dtype=str(np.asarray(Y_pred).dtype))))


def make_model(method, ids):
    """The estimator of ``method`` and the extra arguments of its ``fit``."""
    if method == "takagi":
        from himalaya.backend import set_backend
        from himalaya.ridge import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        set_backend("numpy", on_error="warn")
        return make_pipeline(StandardScaler(with_mean=True, with_std=True), RidgeCV(alphas=TAKAGI_ALPHAS)), {}
    from brainldm.ridge import GroupRidgeCV

    return GroupRidgeCV(alphas=TAKAGI_ALPHAS, n_folds=5, random_state=0), {"groups": ids}


def _rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def measure(method, data_dir, feature):
    """Run one method in a child process; return its report plus its own peak RSS (GB)."""
    cmd = [sys.executable, __file__, "--run-method", method, "--feature", feature, "--data-dir", str(data_dir)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{method} on {feature} failed with exit code {child.returncode}")
    report = json.loads(output.strip().splitlines()[-1])
    report["peak_rss_gb"] = usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux
    return report


# --- the comparison -------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (under a minute)")
    parser.add_argument("--c-fraction", type=float, default=None,
                        help="fraction of c's targets to fit (default: 1/8 at full size, 1 with --quick)")
    parser.add_argument("--data-dir", type=Path, default=None, help="where to write the data (default: a temp dir)")
    parser.add_argument("--run-method", choices=["ours", "takagi"], help=argparse.SUPPRESS)
    parser.add_argument("--feature", choices=["z", "c"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_method:
        run_method(args.run_method, args.data_dir, args.feature)
        return

    sizes = QUICK if args.quick else FULL
    c_fraction = args.c_fraction or (1.0 if args.quick else 1 / 8)
    c_targets = int(round(sizes["n_c"] * c_fraction))
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="brainldm-ridge-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        simulate(data_dir, sizes, c_targets)
        n_trials = np.load(data_dir / "ids.npy").size
        print(f"simulated {n_trials} trials x {sizes['n_voxels']} voxels, z {sizes['n_z']}, "
              f"c {c_targets} of {sizes['n_c']} targets in {time.perf_counter() - t0:.0f} s", flush=True)
        rows = {}
        for feature in ("z", "c"):
            n_targets = sizes["n_z"] if feature == "z" else c_targets
            scale = 1.0 if feature == "z" else sizes["n_c"] / c_targets
            result = {"n_targets_measured": n_targets, "time_extrapolation": scale}
            for method in ("ours", "takagi"):
                report = measure(method, data_dir, feature)
                report["seconds_full"] = report["seconds"] * scale
                report["cpu_seconds_full"] = report["cpu_seconds"] * scale
                result[method] = report
                print(f"{feature} {method}: {report}", flush=True)
            pred = {m: np.load(data_dir / f"pred_{m}_{feature}.npy") for m in ("ours", "takagi")}
            Y_test = np.load(data_dir / f"Y_{feature}_test.npy")
            # The recipe fits no intercept (himalaya's default): its predictions lack each target's
            # mean, so the maps are compared on predictions centred per target; raw r beside it.
            centred = {m: p - p.mean(0) for m, p in pred.items()}
            result["agreement"] = float(np.corrcoef(centred["ours"].ravel(), centred["takagi"].ravel())[0, 1])
            result["agreement_raw"] = float(np.corrcoef(pred["ours"].ravel(), pred["takagi"].ravel())[0, 1])
            result["test_r_ours"] = float(np.nanmean(_columnwise_r(Y_test, pred["ours"])))
            result["test_r_takagi"] = float(np.nanmean(_columnwise_r(Y_test, pred["takagi"])))
            result["speedup"] = result["takagi"]["seconds"] / result["ours"]["seconds"]
            # CPU time (all threads) is robust to other jobs sharing the machine; wall time is not
            result["speedup_cpu"] = result["takagi"]["cpu_seconds"] / result["ours"]["cpu_seconds"]
            result["memory_ratio"] = result["ours"]["peak_rss_gb"] / result["takagi"]["peak_rss_gb"]
            rows[feature] = result
        print_table(rows)
        summary = dict(
            quick=args.quick, n_trials=int(n_trials), n_test=sizes["n_test"], n_voxels=sizes["n_voxels"],
            n_z=sizes["n_z"], n_c=sizes["n_c"], c_targets_measured=c_targets,
            note=("c measured on the first c_targets_measured targets; seconds_full extrapolated linearly "
                  "in targets; peak memory as measured" if c_targets < sizes["n_c"] else "all sizes measured"),
            speedup=min(r["speedup"] for r in rows.values()),
            speedup_cpu=min(r["speedup_cpu"] for r in rows.values()),
            memory_ratio=max(r["memory_ratio"] for r in rows.values()),
            agreement=min(r["agreement"] for r in rows.values()),
            agreement_note=("Pearson r of the flattened test predictions, each centred per target: the recipe "
                            "fits no intercept, so its raw predictions miss every target's mean (agreement_raw)"),
            features=rows,
        )
        print(json.dumps(summary))
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


def _columnwise_r(a, b):
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def print_table(rows):
    print("| feature | targets | method | wall s | CPU s | wall s (all targets) | peak RSS GB | RSS before fit GB "
          "| test r |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for feature, r in rows.items():
        for method in ("ours", "takagi"):
            m = r[method]
            print(f"| {feature} | {r['n_targets_measured']} | {method} | {m['seconds']:.1f} | {m['cpu_seconds']:.1f} "
                  f"| {m['seconds_full']:.1f} "
                  f"| {m['peak_rss_gb']:.2f} | {m['rss_before_fit_gb']:.2f} | {r['test_r_' + method]:.4f} |")
        print(f"| {feature} | | speedup {r['speedup']:.2f}x (CPU time {r['speedup_cpu']:.2f}x), memory ratio {r['memory_ratio']:.2f}, "
              f"agreement r {r['agreement']:.5f} (raw, recipe without intercept: {r['agreement_raw']:.3f}) "
              "| | | | | | |")


if __name__ == "__main__":
    main()
