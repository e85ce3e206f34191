"""Benchmark: brainldm's GroupRidgeCV beside himalaya's RidgeCV and Takagi & Nishimoto's decoding recipe.

Takagi's recipe (yu-takagi/StableDiffusionReconstruction, ``codes/utils/ridge.py``) for
``z`` and ``c``: ``make_pipeline(StandardScaler(), himalaya.ridge.RidgeCV(alphas=[1e-6,
1e-5, ..., 1]))`` on the numpy backend, with himalaya's defaults (5-fold ``KFold``
without shuffling or groups, ``fit_intercept=False``, SVD solver), fitted on single
trials and applied to repeat-averaged test betas.

Methods, all on the same problem (the recipe's alphas, its unshuffled contiguous 5-fold
splits of the single trials, no intercept, a per-target alpha):

``ours``
    ``GroupRidgeCV(RidgeRecipe(cv="contiguous", fit_intercept=False))`` (primal solver, eigenbasis
    validation, ``X.T @ Y`` from one row per image when the targets repeat per image).
``himalaya_torch``
    ``StandardScaler`` + himalaya ``RidgeCV`` on the ``torch`` backend (CPU), the same
    contiguous splits passed as ``cv`` (a list of (train, test) index pairs).
``himalaya_torch_cuda``
    The same on the ``torch_cuda`` backend: the reference on a GPU; skipped, with the
    reason printed, when CUDA is not available.
``takagi``
    The recipe as published (numpy backend).

All see the same simulated NSD-scale data (a known linear map plus noise, seeded); each
method runs in its own subprocess, so that its peak resident memory (``ru_maxrss`` of that
child, from ``os.wait4``) and wall and CPU times are its own. The data are written once to
``.npy`` files and loaded whole by each child, as the recipe loads its ``.npy`` files.
Reported per feature (``z``, ``c``): wall and CPU time, peak memory, and the agreement of
each method's test predictions with the recipe's (Pearson r of the flattened predictions,
centred per target; raw r beside it).

GEMM share. The run measures this machine's float32 GEMM rate (the best of three
``(p, p) @ (p, 4096)`` and ``(p, n) @ (n, 4096)`` products (1024 columns with ``--quick``) in torch and in numpy, before
and after the methods; the peak is the largest) and divides each method's achieved rate,
its floating-point operations over its wall time, by it. Counted operations (a multiply-add
is 2; n trials, m images, p voxels, t targets, K folds with n_v validation and
n_tr = n - n_v training trials each, L alphas, q test images, L_u distinct chosen alphas;
a symmetric eigendecomposition with vectors 9 p^3, a thin SVD of an (a, b) matrix
6 a b^2 + 20 b^3, Golub & Van Loan):

    ours     = sum_folds (6 n_v p^2) + 9 (K + 1) p^3
               + t [2 m p + 2 n p + 4 K p^2 + 4 K L p + 4 p^2 + 2 q p]
    himalaya = sum_folds [6 n_tr p^2 + 20 p^3 + 2 L p^2 n_tr + 2 L n_v p n_tr + 2 L n_v n_tr t]
               + 6 n p^2 + 20 p^3 + 2 L_u p^2 n + 2 L_u p n t + 2 q p t

(``ours``: each fold's X_val.T @ X_val (they sum to the Gram matrix), A = X_val @ V and
G = A.T @ A, the eigendecompositions; per target X.T @ Y from the images, each fold's
A.T @ Y_val, V.T @ X.T @ Y and H @ B, the alpha sums, the refit and the test predictions.
``himalaya``: per fold the SVD of X_train, the L resolution matrices V diag U.T, X_val
times them, and their product with Y_train; the refit.)

If the recipe would not fit in memory or time at ``c``'s full 59,136 targets, every
method runs on the first ``--c-fraction`` of ``c``'s targets. ``z`` and ``c`` share X and
differ only in their number of targets, so each method's wall time is fitted as
``seconds = a + b * targets`` through its two measurements and extrapolated to all of ``c``'s
targets (``seconds_full``); peak memory is reported as measured. ``speedup`` is the smallest
measured ratio (the extrapolated one is reported beside it).

Usage::

    python benchmarks/ridge.py --quick          # reduced sizes, under a minute
    nohup nice -n 10 python benchmarks/ridge.py --c-fraction 0.0625 > ridge_bench.log 2>&1 &
    python benchmarks/ridge.py --quick --profile  # where ours spends its time (cProfile)

The last line of output is JSON with ``speedup``, ``memory_ratio``, ``agreement`` and
``gemm_share`` (ours against the recipe).
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

#: the operation counts of the docstring, printed with the table
FLOP_FORMULAS = __doc__[__doc__.index("    ours     = "):__doc__.index("(``ours``: each fold")].rstrip()

TAKAGI_ALPHAS = np.logspace(-6, 0, 7)  # [1e-6, ..., 1] for 'c' and 'init_latent' (z) in their ridge.py

FULL = dict(n_images=8859, n_short=1597, n_test=982, n_voxels=4000, n_z=6400, n_c=59136, n_latent=256)
QUICK = dict(n_images=300, n_short=50, n_test=50, n_voxels=120, n_z=200, n_c=600, n_latent=16)


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
METHODS = ("ours", "himalaya_torch", "himalaya_torch_cuda", "takagi")


def run_method(method, data_dir, feature, profile=False):
    """Fit ``method`` on ``feature``, predict the test set; print wall time and memory as JSON."""
    X, ids = np.load(data_dir / "X.npy"), np.load(data_dir / "ids.npy")
    X_test = np.load(data_dir / "X_test.npy")
    Y = np.load(data_dir / f"Y_{feature}.npy")
    model, fit_kwargs = make_model(method, ids)
    before_fit_kb = _rss_kb()  # data and imported libraries
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(X, Y, **fit_kwargs)
    Y_pred = _to_numpy(model.predict(X_test))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if profile:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    np.save(data_dir / f"pred_{method}_{feature}.npy", Y_pred)
    best = _to_numpy(model.best_alphas_ if method == "ours" else model[-1].best_alphas_)
    print(json.dumps(dict(seconds=seconds, cpu_seconds=cpu_seconds, rss_before_fit_gb=before_fit_kb / 2**20,
                          n_used_alphas=int(np.unique(best).size))))


def _to_numpy(array):
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float32)


def make_model(method, ids):
    """The estimator of ``method`` and the extra arguments of its ``fit``."""
    from brainldm.fit.ridge import GroupRidgeCV, RidgeRecipe, contiguous_kfold

    if method in ("takagi", "himalaya_torch", "himalaya_torch_cuda"):
        from himalaya.backend import set_backend
        from himalaya.ridge import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if method == "takagi":
            set_backend("numpy", on_error="raise")
            return make_pipeline(StandardScaler(with_mean=True, with_std=True), RidgeCV(alphas=TAKAGI_ALPHAS)), {}
        set_backend("torch" if method == "himalaya_torch" else "torch_cuda", on_error="raise")
        splits = contiguous_kfold(ids.size, 5)  # the recipe's KFold(5) splits, passed explicitly
        return make_pipeline(StandardScaler(), RidgeCV(alphas=TAKAGI_ALPHAS, cv=splits)), {}
    recipe = RidgeRecipe(alphas=TAKAGI_ALPHAS, n_folds=5, cv="contiguous", fit_intercept=False)
    return GroupRidgeCV(recipe, device="cpu", progress=False), {"groups": ids}


def _rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def measure(method, data_dir, feature, profile=False):
    """Run one method in a child process; return its report plus its own peak RSS (GB)."""
    cmd = [sys.executable, __file__, "--run-method", method, "--feature", feature, "--data-dir", str(data_dir)]
    child = subprocess.Popen(cmd + (["--profile"] if profile else []), stdout=subprocess.PIPE, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{method} on {feature} failed with exit code {child.returncode}")
    report = json.loads(output.strip().splitlines()[-1])
    report["peak_rss_gb"] = usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux
    return report


def cuda_skip_reason():
    """Why ``himalaya_torch_cuda`` cannot run here, or None when it can."""
    try:
        import torch
    except ImportError as error:
        return f"torch is not importable ({error})"
    if not torch.cuda.is_available():
        return f"torch.cuda.is_available() is False (torch {torch.__version__}, built for CUDA {torch.version.cuda})"
    return None


# --- operation counts and this machine's GEMM rate ----------------------------------------
def gemm_rate(sizes, chunk=4096, repeats=3):
    """Best float32 GEMM rate (GFLOP/s) of the benchmark's shapes, in torch and in numpy."""
    import torch

    p, n = sizes["n_voxels"], sizes["n_trials"]
    rng = np.random.default_rng(1)
    rates = {}
    for name, (a, b) in {"pp": ((p, p), (p, chunk)), "pn": ((p, n), (n, chunk))}.items():
        left = rng.standard_normal(a, dtype=np.float32)
        right = rng.standard_normal(b, dtype=np.float32)
        flops = 2.0 * a[0] * a[1] * b[1]
        for library, mul in (("torch", lambda x, y: x @ y), ("numpy", np.matmul)):
            x, y = (torch.from_numpy(left), torch.from_numpy(right)) if library == "torch" else (left, right)
            mul(x, y)  # warm up
            best = min(_timed(mul, x, y) for _ in range(repeats))
            rates[f"{library}_{name}"] = flops / best / 1e9
    return rates


def _timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def fold_sizes(n_trials, n_folds=5):
    sizes = np.full(n_folds, n_trials // n_folds)
    sizes[:n_trials % n_folds] += 1
    return sizes


def flops_ours(n, m, p, t, q, L=7, K=5):
    """Operations of GroupRidgeCV's primal solver with eigenbasis validation (formula in the docstring)."""
    n_v = fold_sizes(n, K)
    fixed = sum(6 * v * p**2 for v in n_v) + 9 * (K + 1) * p**3
    return float(fixed + t * (2 * m * p + 2 * n * p + 4 * K * p**2 + 4 * K * L * p + 4 * p**2 + 2 * q * p))


def flops_himalaya(n, p, t, q, L=7, K=5, L_used=7):
    """Operations of himalaya's RidgeCV with the SVD solver (formula in the docstring)."""
    total = 0.0
    for n_v in fold_sizes(n, K):
        n_tr = n - n_v
        total += 6 * n_tr * p**2 + 20 * p**3 + 2 * L * p**2 * n_tr + 2 * L * n_v * p * n_tr + 2 * L * n_v * n_tr * t
    return float(total + 6 * n * p**2 + 20 * p**3 + 2 * L_used * p**2 * n + 2 * L_used * p * n * t + 2 * q * p * t)


# --- the comparison -------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (under a minute)")
    parser.add_argument("--c-fraction", type=float, default=None,
                        help="fraction of c's targets to fit (default: 1/16 at full size, 1 with --quick)")
    parser.add_argument("--data-dir", type=Path, default=None, help="where to write the data (default: a temp dir)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated subset of {', '.join(METHODS)} ('ours' and 'takagi' are needed "
                             "for the summary)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions of ours (stderr)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --data-dir: reuse the measurements (report_<method>_<feature>.json) and predictions "
                             "of an interrupted run on the same data; measure only the missing ones")
    parser.add_argument("--reuse-only", action="store_true",
                        help="with --reuse: leave out himalaya's backends where no measurement was saved")
    parser.add_argument("--run-method", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--feature", choices=["z", "c"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.reuse = args.reuse or args.reuse_only
    if args.run_method:
        run_method(args.run_method, args.data_dir, args.feature, profile=args.profile)
        return

    sizes = dict(QUICK if args.quick else FULL)
    c_fraction = args.c_fraction or (1.0 if args.quick else 1 / 16)
    c_targets = int(round(sizes["n_c"] * c_fraction))
    methods = [m for m in METHODS if m in args.methods.split(",")]
    skip = cuda_skip_reason()
    if "himalaya_torch_cuda" in methods and skip:
        print(f"himalaya_torch_cuda skipped: {skip}", flush=True)
        methods.remove("himalaya_torch_cuda")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="brainldm-ridge-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        existing = data_dir / "Y_c.npy"
        if not (args.reuse and existing.exists() and np.load(existing, mmap_mode="r").shape[1] == c_targets):
            simulate(data_dir, sizes, c_targets)  # seeded: an interrupted run's data are the same
        ids = np.load(data_dir / "ids.npy")
        sizes["n_trials"], n_images = ids.size, np.unique(ids).size
        print(f"simulated {ids.size} trials x {sizes['n_voxels']} voxels, z {sizes['n_z']}, "
              f"c {c_targets} of {sizes['n_c']} targets in {time.perf_counter() - t0:.0f} s", flush=True)
        chunk = 1024 if args.quick else 4096
        gemm_before = gemm_rate(sizes, chunk)
        print(f"GEMM GFLOP/s before: {_rounded(gemm_before)}", flush=True)
        rows = {feature: {"n_targets_measured": sizes["n_z"] if feature == "z" else c_targets} for feature in "zc"}
        # ours and the recipe first (the summary's numbers), then himalaya's other backends
        for method, feature in [(m, f) for m in sorted(methods, key=("ours", "takagi").__contains__, reverse=True)
                                for f in "zc"]:
            result, n_targets = rows[feature], rows[feature]["n_targets_measured"]
            saved = data_dir / f"report_{method}_{feature}.json"
            if args.reuse and saved.exists():
                report = json.loads(saved.read_text())
                print(f"{feature} {method}: reusing the measurement in {saved}", flush=True)
            elif args.reuse_only and method not in ("ours", "takagi"):
                print(f"{feature} {method}: no saved measurement, left out (--reuse-only)", flush=True)
                continue
            else:
                report = measure(method, data_dir, feature, profile=args.profile and method == "ours")
                saved.write_text(json.dumps(report))
            if "flops" in report:  # counted by whoever saved it (another version of the engine)
                pass
            elif method == "ours":
                report["flops"] = flops_ours(ids.size, n_images, sizes["n_voxels"], n_targets, sizes["n_test"])
            else:
                report["flops"] = flops_himalaya(ids.size, sizes["n_voxels"], n_targets, sizes["n_test"],
                                                 L_used=report["n_used_alphas"])
            report["gflops_per_s"] = report["flops"] / report["seconds"] / 1e9
            result[method] = report
            print(f"{feature} {method}: {_rounded(report)}", flush=True)
        for feature, result in rows.items():
            pred = {m: np.load(data_dir / f"pred_{m}_{feature}.npy") for m in methods if m in result}
            Y_test = np.load(data_dir / f"Y_{feature}_test.npy")
            # The recipe fits no intercept (himalaya's default): its predictions lack each target's
            # mean, so the maps are compared on predictions centred per target; raw r beside it.
            centred = {m: p - p.mean(0) for m, p in pred.items()}
            for m in pred:
                result[m]["agreement"] = float(np.corrcoef(centred[m].ravel(), centred["takagi"].ravel())[0, 1])
                result[m]["agreement_raw"] = float(np.corrcoef(pred[m].ravel(), pred["takagi"].ravel())[0, 1])
                result[m]["test_r"] = float(np.nanmean(_columnwise_r(Y_test, pred[m])))
            result["speedup"] = result["takagi"]["seconds"] / result["ours"]["seconds"]
            # CPU time (all threads) is robust to other jobs sharing the machine; wall time is not
            result["speedup_cpu"] = result["takagi"]["cpu_seconds"] / result["ours"]["cpu_seconds"]
            result["memory_ratio"] = result["ours"]["peak_rss_gb"] / result["takagi"]["peak_rss_gb"]
        gemm_after = gemm_rate(sizes, chunk)
        print(f"GEMM GFLOP/s after: {_rounded(gemm_after)}", flush=True)
        peak = max(max(gemm_before.values()), max(gemm_after.values()))
        for feature, result in rows.items():
            for m in methods:
                if m in result:
                    result[m]["gemm_share"] = result[m]["gflops_per_s"] / peak
        extrapolation = extrapolate(rows, methods, sizes["n_c"])
        print_table(rows, methods, peak, extrapolation)
        summary = dict(
            quick=args.quick, n_trials=int(ids.size), n_images=int(n_images), n_test=sizes["n_test"],
            n_voxels=sizes["n_voxels"], n_z=sizes["n_z"], n_c=sizes["n_c"], c_targets_measured=c_targets,
            methods=methods, methods_per_feature={f: [m for m in methods if m in rows[f]] for f in rows},
            cuda_skipped=skip,
            gemm_gflops_per_s=peak, gemm_before=gemm_before, gemm_after=gemm_after,
            extrapolation=extrapolation,
            note=("c measured on the first c_targets_measured targets; c's full wall time extrapolated per method "
                  "through seconds = a + b * targets fitted to its z and c runs; peak memory as measured"
                  if c_targets < sizes["n_c"] else "all sizes measured"),
            speedup=min(r["speedup"] for r in rows.values()),
            speedup_cpu=min(r["speedup_cpu"] for r in rows.values()),
            memory_ratio=max(r["memory_ratio"] for r in rows.values()),
            agreement=min(r["ours"]["agreement"] for r in rows.values()),
            gemm_share=min(r["ours"]["gemm_share"] for r in rows.values()),
            agreement_note=("Pearson r of the flattened test predictions against the recipe's, each centred per "
                            "target: the recipe fits no intercept and neither does ours here (agreement_raw)"),
            features=rows,
        )
        print(json.dumps(summary))
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


def extrapolate(rows, methods, n_c):
    """Per method: ``seconds = a + b * targets`` through its z and c wall times, evaluated at all of c's targets."""
    t_z, t_c = rows["z"]["n_targets_measured"], rows["c"]["n_targets_measured"]
    out = {}
    for m in methods:
        if m not in rows["z"] or m not in rows["c"]:
            continue
        s_z, s_c = rows["z"][m]["seconds"], rows["c"][m]["seconds"]
        b = (s_z - s_c) / (t_z - t_c) if t_z != t_c else s_c / t_c
        a = s_c - b * t_c
        out[m] = dict(a=a, b=b, c_seconds_full=a + b * n_c)
    if "ours" in out and "takagi" in out:
        out["c_speedup_full"] = out["takagi"]["c_seconds_full"] / out["ours"]["c_seconds_full"]
    return out


def _rounded(report):
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in report.items()}


def _columnwise_r(a, b):
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def print_table(rows, methods, peak, extrapolation):
    print(f"GEMM peak {peak:.0f} GFLOP/s (float32); operations counted as\n{FLOP_FORMULAS}")
    print("| feature | targets | method | wall s | CPU s | peak RSS GB | agreement r | GFLOP | GFLOP/s "
          "| GEMM share | test r |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for feature, r in rows.items():
        for m in methods:
            if m not in r:
                continue
            x = r[m]
            print(f"| {feature} | {r['n_targets_measured']} | {m} | {x['seconds']:.1f} | {x['cpu_seconds']:.1f} "
                  f"| {x['peak_rss_gb']:.2f} | {x['agreement']:.5f} | {x['flops'] / 1e9:.0f} "
                  f"| {x['gflops_per_s']:.1f} | {x['gemm_share']:.3f} | {x['test_r']:.4f} |")
        print(f"{feature}: speedup {r['speedup']:.2f}x (CPU time {r['speedup_cpu']:.2f}x), memory ratio "
              f"{r['memory_ratio']:.2f}, agreement r {r['ours']['agreement']:.5f} (raw {r['ours']['agreement_raw']:.5f})")
    for m in methods:
        if m not in extrapolation:
            continue
        e = extrapolation[m]
        print(f"c at all targets, {m}: {e['a']:.1f} + {e['b'] * 1e3:.3f} ms x targets = {e['c_seconds_full']:.0f} s")
    if "c_speedup_full" in extrapolation:
        print(f"c at all targets: speedup {extrapolation['c_speedup_full']:.2f}x (extrapolated)")


if __name__ == "__main__":
    main()
