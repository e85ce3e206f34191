"""The ``brainldm`` command line.

``brainldm run 01 -p subject subj05``   execute one chapter into book/
``brainldm book``                       execute every chapter, then build the HTML
``brainldm book --dataset nsd --profile paper --scheduler slurm``   NSD's book on a SLURM cluster
``brainldm refs [01 ...]``              rewrite nbval reference notebooks (smoke parameters)
``brainldm check``                      which datasets, models and GPU this machine has
``brainldm check-book``                 open every built page in headless Chromium and check it
``brainldm train-world [...]``          retrain the embedded world models

Every error a reader can cause (an unknown chapter, a bad parameter or option, a missing file
or model) is a :class:`~brainldm.errors.BrainLDMError`: :func:`main` prints it as one line,
``brainldm: error: <what was expected, what was found, how to fix it>``, and exits with status 2.
Anything else is a bug, and keeps its traceback.
"""

import argparse
import sys
import tempfile

from brainldm.settings import project_root
from brainldm.book.browser import check_site, chromium_executable
from brainldm.book.build import (BuildOptions, build_book, find_chapter, list_chapters, run_chapter,
                                 write_reference)
from brainldm.book.check import report
from brainldm.book.run_record import provenance, provenance_lines
from brainldm.errors import BrainLDMError, CommandParser

__all__ = ["main"]


def _parser():
    parser = CommandParser(prog="brainldm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute one chapter (jupytext -> papermill) into book/")
    run.add_argument("chapter", help="chapter number or name, e.g. 01 or 01_describe_data")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a parameter of the chapter's parameters cell (repeatable)")
    run.add_argument("-o", "--output-dir", help="folder for the executed notebook (default: book/)")
    book = sub.add_parser("book", help="execute every chapter of a dataset's book, then build the HTML")
    book.add_argument("--no-execute", action="store_true", help="build from the notebooks already in the output folder")
    book.add_argument("--rerun", action="store_true",
                      help="execute every chapter, even those whose inputs are unchanged since their last run")
    book.add_argument("--dataset", default="world", choices=("world", "nsd"),
                      help="world (default) or nsd; world-only chapters get a page saying why they are absent")
    book.add_argument("--profile", default="default", choices=("default", "smoke", "paper"),
                      help="each chapter's parameters from chapters/profiles.yml (default: the chapters' own)")
    book.add_argument("--output", help="the book's folder (default: book/ for the world, book-<dataset>/ otherwise)")
    book.add_argument("--subjects", nargs="+", metavar="SUBJECT",
                      help="subjects passed to every chapter (subjects; the first as subject)")
    book.add_argument("--device", help="torch device passed to every chapter, e.g. cuda:0")
    book.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), help="precision passed to every chapter")
    book.add_argument("--scheduler", metavar="SPEC",
                      help="run the expensive stages and the chapters on Dask: local:N, tcp://HOST:PORT or slurm "
                           "(default: everything in this process)")
    book.add_argument("--slurm-config", metavar="PATH",
                      help="SLURM settings for --scheduler slurm (default: BRAINLDM_SLURM_CONFIG, else slurm.yml)")
    book.add_argument("--publish", action="store_true",
                      help="commit the HTML to the local gh-pages branch with ghp-import (push it yourself)")
    refs = sub.add_parser("refs", help="rewrite tests/notebooks/ (nbval references, smoke parameters)")
    refs.add_argument("chapters", nargs="*", help="chapters to rewrite (default: all)")
    sub.add_parser("check", help="report which datasets and models are found and whether a GPU is visible")
    browse = sub.add_parser("check-book", help="open every page of the built book in headless Chromium: images, "
                                               "console errors, internal links, the WebGL viewer, stderr residue")
    browse.add_argument("html", nargs="?", default=None,
                        help="the built HTML (default: book/_build/html of the repository)")
    browse.add_argument("--chromium", metavar="PATH", help="Chromium executable (default: BRAINLDM_CHROMIUM, "
                                                           "else Debian's chromium)")
    browse.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for one page (default 60)")
    browse.add_argument("--if-chromium", action="store_true",
                        help="without Chromium, say so and exit 0 instead of failing (make book on a machine "
                             "without apt)")
    browse.add_argument("-v", "--verbose", action="store_true", help="one line per page as it is checked")
    train = sub.add_parser("train-world", help="retrain the world models shipped with the package",
                           add_help=False)
    train.add_argument("train_args", nargs=argparse.REMAINDER,
                       help="options of the trainer (brainldm train-world --help)")
    return parser


def _check_book(args):
    html = args.html or str(project_root() / "book" / "_build" / "html")
    if args.if_chromium and chromium_executable(args.chromium) is None:
        print("browser check: skipped (Chromium is not installed: apt-get install chromium, or make system-packages "
              "as root)")
        return 0
    report = check_site(html, executable=args.chromium, timeout=args.timeout, log=print if args.verbose else None)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def main(argv=None):
    """Entry point: returns the exit status; a :class:`BrainLDMError` is printed as one line, with status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _command(argv)
    except BrainLDMError as error:
        # one line: the chapter and cell (when inside one), what was wrong and how to fix it
        print(f"brainldm: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


def _command(argv):
    # the trainer parses its own options (argparse's REMAINDER refuses a leading --option)
    args = _parser().parse_args(argv[:1] if argv[:1] == ["train-world"] else argv)
    if args.command == "run":
        run_chapter(args.chapter, dict(args.parameter), args.output_dir)
    elif args.command == "book":
        build_book(BuildOptions(execute=not args.no_execute, dataset=args.dataset, profile=args.profile,
                                output=args.output, subjects=args.subjects, device=args.device, dtype=args.dtype,
                                scheduler=args.scheduler, slurm_config=args.slurm_config, publish=args.publish,
                                rerun=args.rerun))
    elif args.command == "refs":
        stems = [find_chapter(key).stem for key in args.chapters]  # every name checked before any run
        # an empty data folder, as a fresh clone's suite starts with: no cache entry of another run is read
        with tempfile.TemporaryDirectory(prefix="brainldm-refs-") as data:
            for stem in stems or [p.stem for p in list_chapters()]:
                write_reference(stem, data=data)
    elif args.command == "check":
        print(report())
        print("\nProvenance (what every chapter's page records)")
        print("\n".join(f"  {line}" for line in provenance_lines(provenance())))
    elif args.command == "check-book":
        return _check_book(args)
    elif args.command == "train-world":
        from brainldm.training.train import train_world_main  # torch and diffusers: only for this command

        return train_world_main(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
