"""Benchmark: where each chapter spends its time, cold and warm (cProfile).

Each chapter is turned into a plain script (its code cells in order, the ``parameters`` cell
replaced by the chosen profile's parameters, as ``brainldm book`` passes them to papermill) and
run twice under ``python -m cProfile`` in a child process with its own ``BRAINLDM_DATA``: first
with an empty cache (*cold*: everything is computed), then again on that cache (*warm*: what a
rebuild pays). For every run it prints the wall time and the functions of ``brainldm`` with the
largest cumulative time; the ``.prof`` files stay in ``--out`` for ``snakeviz`` or ``pstats``.

Usage::

    python benchmarks/profile_chapters.py --chapters 02 08 14            # default profile, world
    python benchmarks/profile_chapters.py --profile smoke --top 10       # every chapter, tiny sizes
    nohup python benchmarks/profile_chapters.py > profile.log 2>&1 &     # all chapters, default sizes

The last line of output is JSON: per chapter, ``cold_s`` and ``warm_s`` (wall seconds) and the
``top`` brainldm functions of the cold run with their cumulative seconds.
"""

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def chapter_script(stem, parameters):
    """A chapter's code cells as one script, its ``parameters`` cell replaced by ``parameters``."""
    from brainldm.book.build import _read_notebook, chapter_parameters, find_chapter

    notebook = _read_notebook(find_chapter(stem, ROOT))
    values = {**chapter_parameters(notebook), **parameters}
    lines = ["import matplotlib", "matplotlib.use('Agg')"]
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            lines += [f"{name} = {value!r}" for name, value in values.items()]
        else:
            lines.append(cell.source)
    return "\n".join(lines) + "\n"


def profile_run(script, prof, data_dir, cwd):
    """Run ``script`` under cProfile in a child process; returns its wall seconds."""
    env = {**os.environ, "BRAINLDM_DATA": str(data_dir), "MPLBACKEND": "Agg", "BRAINLDM_PROGRESS": "0"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), str(script)], cwd=cwd, env=env,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{script.name} failed:\n{result.stderr[-3000:]}")
    return seconds


def top_functions(prof, n):
    """The ``n`` brainldm functions with the largest cumulative time: list of (name, seconds)."""
    stats = pstats.Stats(str(prof)).stats
    rows = [(f"{Path(file).name}:{line}({name})", entry[3]) for (file, line, name), entry in stats.items()
            if "brainldm" in file and "benchmarks" not in file]
    return sorted(rows, key=lambda row: -row[1])[:n]


def main(argv=None):
    from brainldm.book.build import book_chapters, chapter_plan

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapters", nargs="*", help="chapter numbers or names (default: every chapter)")
    parser.add_argument("--profile", default="default", help="parameter profile of chapters/profiles.yml")
    parser.add_argument("--dataset", default="world")
    parser.add_argument("--top", type=int, default=8, help="functions listed per chapter")
    parser.add_argument("--out", default=None, help="folder for the scripts and .prof files (default: a temp dir)")
    args = parser.parse_args(argv)

    overrides, _ = chapter_plan(args.dataset, args.profile, root=ROOT)
    stems = book_chapters(args.dataset, ROOT)[0]
    if args.chapters:
        stems = [s for s in stems if any(s == c or s.split("_", 1)[0] == c.zfill(2) for c in args.chapters)]
    out = Path(args.out or tempfile.mkdtemp(prefix="brainldm-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for stem in stems:
        script = out / f"{stem}.py"
        script.write_text(chapter_script(stem, overrides[stem]))
        data = out / f"data-{stem}"  # one empty cache per chapter: its cold run computes what it needs
        times = {}
        for phase in ("cold", "warm"):
            times[phase] = profile_run(script, out / f"{stem}-{phase}.prof", data, ROOT / "chapters")
        top = top_functions(out / f"{stem}-cold.prof", args.top)
        print(f"{stem}: cold {times['cold']:.1f} s, warm {times['warm']:.1f} s; cumulative seconds, cold run:")
        for name, seconds in top:
            print(f"    {seconds:8.1f}  {name}")
        summary[stem] = {"cold_s": round(times["cold"], 1), "warm_s": round(times["warm"], 1),
                         "top": [[name, round(seconds, 1)] for name, seconds in top]}
    print(f"profiles in {out}")
    print(json.dumps({"profile": args.profile, "dataset": args.dataset, "chapters": summary}))


if __name__ == "__main__":
    main()
