"""Peak memory and time of reading one subject's masked NSD betas, at full NSD size.

Fabricates full-size sessions of subj01 (81 x 104 x 83 voxels x 750 trials, int16:
about 1 GB uncompressed, in both ``.hdf5`` and ``.nii.gz``), reads it through
:class:`brainldm.data.datasets.nsd.NSDDataset` in a fresh process per format, and measures
the peak resident memory (``ru_maxrss``) before and after reading. The streaming cost
of a session does not grow with the number of sessions, so the peak for the 37 public
sessions is the measured baseline + streaming overhead + the 37-session result.

    python benchmarks/nsd_memory.py [--sessions 1] [--root /tmp/nsd_full]   # last line: JSON
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = (81, 104, 83)  # subj01, func1pt8mm
TRIALS = 750
PUBLIC_SESSIONS = 37
MB = 2 ** 20


def _maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(root, fmt, cache):
    """In this process: construct the dataset, then read the masked betas (written to the cache)."""
    import os

    os.environ["BRAINLDM_CACHE"] = str(cache)
    os.environ["TQDM_DISABLE"] = "1"
    from brainldm.data.datasets import load_dataset

    data = load_dataset("nsd", subject="subj01", root=root, betas_format=fmt)
    baseline = _maxrss_mb()
    start = time.perf_counter()
    train, _ = data.betas("train")
    test, _ = data.betas("test")
    seconds = time.perf_counter() - start
    return {"format": fmt, "n_voxels": data.n_voxels, "n_trials": len(train) + len(test),
            "result_mb": (train.nbytes + test.nbytes) / MB, "baseline_rss_mb": baseline,
            "peak_rss_mb": _maxrss_mb(), "seconds": seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="reuse (or keep) a fabricated full-size tree here; default: a temp dir")
    parser.add_argument("--sessions", type=int, default=1,
                        help="full-size sessions to fabricate and read (1 GB each)")
    parser.add_argument("--child", nargs=3, metavar=("ROOT", "FORMAT", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child)))
        return

    root = Path(args.root or tempfile.mkdtemp(prefix="brainldm_nsd_full_", dir="/tmp"))
    try:
        if not (root / "nsddata/experiments/nsd/nsd_expdesign.mat").exists():
            # in its own process: a child inherits its parent's peak RSS, which must stay small
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "brainldm.data.datasets.nsd_fabricate", str(root),
                            "--sessions", str(args.sessions), "--trials-per-session", str(TRIALS),
                            "--shape", *map(str, SHAPE), "--shared", "6", "--image-size", "8"],
                           check=True, capture_output=True)
            print(f"fabricated {args.sessions} full-size session(s) in {time.perf_counter() - start:.0f} s",
                  file=sys.stderr)
        results = {}
        for fmt in ("hdf5", "nii"):
            with tempfile.TemporaryDirectory(dir="/tmp") as cache:
                out = subprocess.run([sys.executable, __file__, "--child", str(root), fmt, cache],
                                     check=True, capture_output=True, text=True).stdout
            results[fmt] = json.loads(out.strip().splitlines()[-1])
            print(results[fmt], file=sys.stderr)
    finally:
        if not args.root:
            shutil.rmtree(root)

    for r in results.values():
        r["overhead_mb"] = r["peak_rss_mb"] - r["baseline_rss_mb"] - r["result_mb"]
        per_session_result = r["result_mb"] / args.sessions
        r["extrapolated_37_sessions"] = {
            "result_mb": PUBLIC_SESSIONS * per_session_result,
            "peak_rss_mb": r["baseline_rss_mb"] + r["overhead_mb"] + PUBLIC_SESSIONS * per_session_result,
            "read_minutes": PUBLIC_SESSIONS * r["seconds"] / args.sessions / 60}
    summary = {"shape": SHAPE, "trials_per_session": TRIALS, "sessions_read": args.sessions,
               "session_int16_mb": TRIALS * 81 * 104 * 83 * 2 / MB, "results": results}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
