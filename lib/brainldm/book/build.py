"""The book runner: execute chapters with parameters, then build the HTML book.

A chapter is a jupytext percent script ``chapters/NN_verb_object.py`` with one
cell tagged ``parameters``. :func:`run_chapter` reads it with jupytext, checks
the parameters a reader overrides against that cell, executes it with papermill
into ``book/NN_verb_object.ipynb`` and turns a failing cell into one
:class:`~brainldm.errors.BrainLDMError` that names the chapter and the cell.
:func:`build_book` runs every chapter of a dataset's book with a profile's parameters
(``chapters/profiles.yml``; its :class:`BuildOptions` are the options of ``brainldm book``), optionally
spread over a Dask cluster (:mod:`brainldm.book.cluster`), and then builds ``<output>/_build/html`` with
Jupyter Book without executing anything again.

A warm build re-executes only what changed: beside each executed notebook,
``<output>/.executed/<chapter>.json`` records the digest of everything its outputs depend
on (:func:`execution_key`: the chapter's source, its parameters, the package's source, the
world models' weights and the ``BRAINLDM_*`` settings). A chapter whose key is unchanged
and whose notebook exists is not run again.
"""

import ast
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from brainldm.settings import TEST_ENVIRONMENT, project_root
from brainldm.book.cluster import brainldm_environment, connect, plan_stages, run_stages
from brainldm.book.parameters import check_chapter_parameters
from brainldm.book.run_record import collect_provenance, provenance_page
from brainldm.data.anatomy import inkscape_available
from brainldm.errors import BrainLDMError, ParameterError, check_choice

__all__ = ["project_root", "longest_first", "list_chapters", "find_chapter", "chapter_parameters", "parse_parameters",
           "run_chapter", "BuildOptions", "build_book", "smoke_parameters", "write_reference", "profiles", "profile_parameters",
           "book_chapters", "chapter_plan", "execution_key", "WORLD_ONLY", "PROFILES"]


def list_chapters(root=None):
    """Chapter scripts in book order, as a list of paths."""
    root = Path(root) if root else project_root()
    return sorted(p for p in (root / "chapters").glob("[0-9][0-9]_*.py"))


def find_chapter(key, root=None):
    """The chapter script whose number (``"01"``, ``1``) or name (``"01_describe_data"``) is ``key``."""
    key = str(key)
    chapters = list_chapters(root)
    for path in chapters:
        number = path.stem.split("_", 1)[0]
        if key in (path.stem, number) or (key.isdigit() and int(key) == int(number)):
            return path
    valid = ", ".join(p.stem for p in chapters)
    raise BrainLDMError(f"unknown chapter {key!r}; valid chapters are: {valid} (give a chapter's number, e.g. "
                        "01, or its full name)")


def _read_notebook(path):
    import jupytext

    notebook = jupytext.read(path)
    notebook.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                                "language": "python"})
    notebook.metadata.setdefault("language_info", {"name": "python"})
    return notebook


def chapter_parameters(notebook):
    """The defaults of a notebook's ``parameters`` cell, as a dict of name to Python value."""
    cells = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise BrainLDMError(f"a chapter needs exactly one cell tagged 'parameters', found {len(cells)}")
    values = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def _convert(name, text, default):
    """Convert the command-line string ``text`` to the type of the parameter's default."""
    if not isinstance(text, str) or isinstance(default, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if default is None or isinstance(value, type(default)):
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ParameterError(f"parameter {name!r} expects {type(default).__name__} "
                         f"(default {default!r}), got {text!r}")


def parse_parameters(overrides, defaults, chapter=None):
    """Check parameter overrides against a chapter's defaults and convert their types.

    Parameters
    ----------
    overrides : dict
        Name to value; string values (from the command line) are converted to
        the type of the default.
    defaults : dict
        The chapter's parameters (see :func:`chapter_parameters`).
    chapter : str, optional
        The chapter's file stem, for the rules particular to a chapter
        (:data:`brainldm.book.parameters.CHAPTER_OVERRIDES`); without it, the most permissive rule of a name.

    Returns
    -------
    parameters : dict

    Raises
    ------
    ParameterError
        For an unknown parameter, or any parameter (override or default, including those that
        default to None and every key of ``dataset_options``) that breaks its rule in
        :mod:`brainldm.book.parameters`, before anything is executed.
    """
    parsed = {}
    for name, value in overrides.items():
        if name not in defaults:
            valid = ", ".join(defaults)
            raise ParameterError(f"unknown parameter {name!r}; this chapter's parameters are: {valid}")
        parsed[name] = _convert(name, value, defaults[name])
    checked = check_chapter_parameters({**defaults, **parsed}, chapter)
    return {name: checked[name] for name in parsed}


def _failed_cell(notebook):
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index, cell.get("execution_count"), output
    return None, None, None


def run_chapter(key, parameters=None, output_dir=None, root=None, log=print):
    """Execute one chapter with papermill.

    Parameters
    ----------
    key : str or int
        Chapter number or name.
    parameters : dict, optional
        Overrides of the chapter's ``parameters`` cell.
    output_dir : path, optional
        Where the executed notebook goes; ``book/`` by default.
    root : path, optional
        The repository; see :func:`project_root`.
    log : callable
        Receives one line per chapter with its wall time.

    Returns
    -------
    path : Path
        The executed notebook.
    """
    import papermill

    root = Path(root) if root else project_root()
    path = find_chapter(key, root)
    notebook = _read_notebook(path)
    parameters = parse_parameters(parameters or {}, chapter_parameters(notebook), path.stem)
    output_dir = Path(output_dir) if output_dir else root / "book"
    out = output_dir / f"{path.stem}.ipynb"
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        if out.is_dir() or not os.access(output_dir, os.W_OK):
            raise PermissionError(f"cannot write {out}")
    except OSError as error:
        raise BrainLDMError(f"cannot write the executed notebook of chapter {path.stem} into {output_dir} "
                            f"({type(error).__name__}: {error}); choose another folder with -o") from None
    start = time.perf_counter()
    try:
        papermill.execute_notebook(notebook, str(out), parameters=parameters, kernel_name="python3",
                                   cwd=str(path.parent), progress_bar=False, log_output=False)
    except Exception as error:
        if isinstance(error, papermill.PapermillExecutionError):
            raise _chapter_failure(path, out, error, start, log) from None
        if type(error).__name__ in ("DeadKernelError", "CellTimeoutError"):
            index = _running_cell(out)
            where = f"cell {index}" if index is not None else "a cell"
            log(f"{path.stem:<28} FAILED  {time.perf_counter() - start:6.1f} s")
            raise BrainLDMError(f"chapter {path.stem} failed in {where}: the kernel died ({type(error).__name__}; "
                                "most often it ran out of memory: try smaller parameters or a machine with more "
                                f"memory). The notebook up to that cell is {out}") from None
        if isinstance(error, OSError):
            raise BrainLDMError(f"chapter {path.stem}: could not write {out} ({type(error).__name__}: {error})") \
                from None
        raise
    log(f"{path.stem:<28} ok      {time.perf_counter() - start:6.1f} s")
    return out


def _running_cell(out):
    """The index of the cell that was executing when the kernel died (from the notebook papermill saved)."""
    import nbformat

    try:
        notebook = nbformat.read(out, as_version=4)
    except (OSError, ValueError):
        return None
    started = [index for index, cell in enumerate(notebook.cells)
               if cell.get("metadata", {}).get("papermill", {}).get("start_time")]
    return started[-1] if started else None  # the last cell that started (papermill marks it completed)


def _chapter_failure(path, out, error, start, log):
    """The :class:`BrainLDMError` of a chapter whose cell raised: chapter, cell, exception."""
    import nbformat

    index, count, output = _failed_cell(nbformat.read(out, as_version=4))
    where = f"cell {index} (execution count {count})" if index is not None else f"cell {error.cell_index}"
    evalue = output["evalue"] if output else error.evalue
    ename = output["ename"] if output else error.ename
    log(f"{path.stem:<28} FAILED  {time.perf_counter() - start:6.1f} s")
    return BrainLDMError(f"chapter {path.stem} failed in {where}: {ename}: {evalue}\n"
                         f"(the executed notebook with the full traceback is {out})")


#: chapters that only make sense on the world: on another dataset the book gets a page saying why
WORLD_ONLY = {"14_check_ground_truth": "it checks every analysis against the simulated brain's known tuning, "
                                       "which only the world has",
              "90_describe_models": "it describes the small models trained on world images; "
                                    "other datasets use the real models listed in the README"}
PROFILES = ("default", "smoke", "paper")


def profiles(root=None):
    """``chapters/profiles.yml``: profile -> dataset -> chapter -> parameters."""
    import yaml

    root = Path(root) if root else project_root()
    with open(root / "chapters" / "profiles.yml") as f:
        return yaml.safe_load(f) or {}


def profile_parameters(profile="default", dataset="world", root=None):
    """Each chapter's parameters in ``profile`` on ``dataset`` (chapters not listed: none)."""
    table = profiles(root)
    if profile not in table:
        raise BrainLDMError(f"unknown profile {profile!r}; valid profiles are: {', '.join(table)}")
    if dataset not in table[profile]:
        raise BrainLDMError(f"profile {profile!r} has no parameters for dataset {dataset!r}; "
                            f"it has: {', '.join(table[profile])}")
    return {stem: dict(params or {}) for stem, params in (table[profile][dataset] or {}).items()}


def longest_first(stems, dataset="world", root=None):
    """``stems`` ordered by their expected run time, longest first (``chapters/durations.yml``).

    A cluster that starts the longest chapters first finishes sooner (longest-processing-time
    scheduling); chapters without a recorded time keep their order, after the others.
    """
    import yaml

    path = (Path(root) if root else project_root()) / "chapters" / "durations.yml"
    seconds = (yaml.safe_load(path.read_text()) or {}).get(dataset, {}) if path.exists() else {}
    return sorted(stems, key=lambda stem: -float(seconds.get(stem, 0)))


def book_chapters(dataset="world", root=None):
    """``(chapters to execute, absent chapters)`` on ``dataset``: the world-only ones are absent elsewhere."""
    stems = [p.stem for p in list_chapters(root)]
    if dataset == "world":
        return stems, []
    return [s for s in stems if s not in WORLD_ONLY], [s for s in stems if s in WORLD_ONLY]


def chapter_plan(dataset="world", profile="default", subjects=None, device=None, dtype=None, root=None):
    """The parameters each chapter of the book runs with: its profile's, then ``dataset``, ``subjects``,
    ``device`` and ``dtype`` where the chapter has such parameters.

    Returns
    -------
    overrides : dict
        Chapter stem to the parameters passed to papermill (checked against the chapter).
    full : dict
        Chapter stem to all its parameters (defaults with the overrides), for planning stages.
    """
    root = Path(root) if root else project_root()
    chosen = profile_parameters(profile, dataset, root)
    execute, _ = book_chapters(dataset, root)
    overrides, full = {}, {}
    for stem in execute:
        defaults = chapter_parameters(_read_notebook(find_chapter(stem, root)))
        params = dict(chosen.get(stem, {}))
        if "dataset" in defaults and dataset != "world":
            params["dataset"] = dataset
        if subjects:
            if "subjects" in defaults:
                params["subjects"] = list(subjects)
            if "subject" in defaults:
                params["subject"] = subjects[0]
        for name, value in (("device", device), ("dtype", dtype)):
            if value is not None and name in defaults:
                params[name] = value
        try:
            overrides[stem] = parse_parameters(params, defaults)
        except BrainLDMError as error:
            raise BrainLDMError(f"profile {profile!r} on {dataset}, chapter {stem}: {error}") from None
        full[stem] = {**defaults, **overrides[stem]}
    return overrides, full


@functools.lru_cache(maxsize=1)
def _package_digest():
    """Digest of the package's Python source and the world models' weights (their card and files)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    files = sorted(p for p in package.rglob("*") if p.is_file() and p.suffix in (".py", ".json", ".safetensors", ".yml")
                   and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(package)).encode())
        stat = path.stat()
        if path.suffix == ".safetensors":  # large: size and the first megabyte
            with open(path, "rb") as handle:
                digest.update(f"{stat.st_size}".encode() + handle.read(1 << 20))
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()


def execution_key(stem, parameters, root=None):
    """What an executed chapter's outputs depend on, as one digest.

    The chapter's source, its parameter overrides (a profile's parameters among them), the
    package's source and weights (:func:`_package_digest`), and every ``BRAINLDM_*`` environment
    variable.
    """
    root = Path(root) if root else project_root()
    path = find_chapter(stem, root)
    settings = {k: v for k, v in sorted(os.environ.items()) if k.startswith("BRAINLDM_")}
    payload = {"chapter": hashlib.sha256(path.read_bytes()).hexdigest(), "parameters": parameters,
               "package": _package_digest(), "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _up_to_date(stem, parameters, out, root):
    """(is the executed notebook current, its key); the key is recorded after a successful run."""
    key = execution_key(stem, parameters, root)
    record = out / ".executed" / f"{stem}.json"
    try:
        current = (out / f"{stem}.ipynb").exists() and json.loads(record.read_text())["key"] == key
    except (OSError, ValueError, KeyError):
        current = False
    return current, key


def _record_execution(stem, key, out):
    folder = out / ".executed"
    folder.mkdir(exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps({"key": key}))


def _chapter_title(stem, root):
    for cell in _read_notebook(find_chapter(stem, root)).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return stem


def _absent_page(stem, dataset, root):
    return (f"# {_chapter_title(stem, root)}\n\n"
            f"This chapter is not part of the book on **{dataset}**: {WORLD_ONLY[stem]}. "
            f"Build the world's book (`brainldm book`) to read it.\n")


def _write_source(out, dataset, profile, root, absent):
    """Turn ``out`` into a Jupyter Book source folder: config, table of contents, the shared pages."""
    import yaml

    with open(root / "_config.yml") as f:
        config = yaml.safe_load(f)
    config["title"] = f"{config.get('title', 'brainldm')} ({dataset}, {profile} profile)"
    config["exclude_patterns"] = ["_build/*", "**.ipynb_checkpoints"]
    (out / "_config.yml").write_text("# generated by brainldm book\n" + yaml.safe_dump(config, sort_keys=False))
    for bib in config.get("bibtex_bibfiles", []):  # the chapters' {cite} roles and bibliographies read them
        shutil.copy(root / bib, out / bib)
    with open(root / "_toc.yml") as f:
        toc = yaml.safe_load(f)
    for part in toc.get("parts", []):
        for entry in part.get("chapters", []):
            name = entry["file"]
            if name.startswith("book/"):
                entry["file"] = name[len("book/"):]
            else:  # a hand-written page of the repository (e.g. fidelity.md): copied beside the notebooks
                shutil.copy(root / f"{name}.md", out / f"{Path(name).name}.md")
                entry["file"] = Path(name).name
    if not any(entry.get("file") == "provenance" for part in toc.get("parts", []) for entry in part.get("chapters", [])):
        toc["parts"][-1]["chapters"].append({"file": "provenance"})
    shutil.copy(root / f"{toc['root']}.md", out / f"{toc['root']}.md")
    (out / "_toc.yml").write_text("# generated by brainldm book\n" + yaml.safe_dump(toc, sort_keys=False))
    for stem in absent:
        (out / f"{stem}.md").write_text(_absent_page(stem, dataset, root))
        (out / f"{stem}.ipynb").unlink(missing_ok=True)


def _run_on_worker(stem, parameters, output_dir, root, environ):
    """A chapter executed on a Dask worker (its kernel inherits the client's BRAINLDM_* variables)."""
    os.environ.update(environ)
    lines = []
    run_chapter(stem, parameters, output_dir, root, log=lines.append)
    return lines


def _writable_folder(folder):
    """``folder``, created if need be, or a :class:`BrainLDMError` if it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"cannot write into {folder}")
    except OSError as error:
        raise BrainLDMError(f"the book's folder {folder} cannot be written ({type(error).__name__}: {error}); "
                            "choose another one with --output") from None
    return folder


def _publish(html, root, log):
    ghp = shutil.which("ghp-import", path=str(Path(sys.executable).parent)) or shutil.which("ghp-import")
    if ghp is None:
        raise BrainLDMError("ghp-import is not installed; pip install -e '.[book]'")
    result = subprocess.run([ghp, "--no-jekyll", "--branch", "gh-pages", "--message", f"brainldm book ({html.parent})",
                             str(html.parent)], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        raise BrainLDMError(f"ghp-import failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    log(f"{'publish':<28} ok      committed {html.parent} to the local gh-pages branch "
        "(push it yourself: git push origin gh-pages)")


@dataclass(frozen=True)
class BuildOptions:
    """What ``brainldm book`` builds, and how: the options of :func:`build_book`.

    Attributes
    ----------
    execute : bool
        False: build from the notebooks already in ``output``.
    dataset : {"world", "nsd"}
        Chapters that apply only to the world get a short page saying why on other datasets.
    profile : {"default", "smoke", "paper"}
        Each chapter's parameters, from ``chapters/profiles.yml``.
    output : path, optional
        The book's folder: ``book/`` for the world, ``book-<dataset>/`` otherwise; the HTML is
        ``<output>/_build/html``.
    subjects : list of str, optional
        Passed as ``subjects`` (and its first as ``subject``) to every chapter that has them.
    device, dtype : str, optional
        Passed to every chapter that has these parameters.
    scheduler : str, optional
        ``local:N``, ``tcp://HOST:PORT`` or ``slurm``: the expensive stages run first as Dask tasks
        (:mod:`brainldm.book.cluster`), then the chapters run on the cluster's workers and read them
        from the cache. None: everything runs in this process, one chapter after another.
    slurm_config : path, optional
        The SLURM settings (``slurm.yml``) for ``scheduler="slurm"``.
    publish : bool
        Commit the HTML to the local ``gh-pages`` branch with ghp-import (pushing is yours).
    rerun : bool
        Execute every chapter even when its recorded :func:`execution_key` is unchanged.

    Raises
    ------
    BrainLDMError
        For an unknown dataset or profile.
    """

    execute: bool = True
    dataset: str = "world"
    profile: str = "default"
    output: str | None = None
    subjects: tuple | None = None
    device: str | None = None
    dtype: str | None = None
    scheduler: str | None = None
    slurm_config: str | None = None
    publish: bool = False
    rerun: bool = False

    def __post_init__(self):
        check_choice("dataset", self.dataset, ("world", "nsd"))
        check_choice("profile", self.profile, PROFILES)


def build_book(options=None, root=None, log=print):
    """Execute every chapter of a dataset's book, then build its HTML without re-executing.

    Parameters
    ----------
    options : BuildOptions, optional
        The dataset, profile, output folder, scheduler...; the defaults build the world's book
        in ``book/``.
    root : path, optional
        The repository.
    log : callable
        Receives one line per chapter (and per group of stages) with its wall time.

    Returns
    -------
    html : Path
        The book's ``index.html``.
    """
    options = options or BuildOptions()
    dataset, profile, output, scheduler = options.dataset, options.profile, options.output, options.scheduler
    root = Path(root) if root else project_root()
    start = time.perf_counter()
    legacy = output is None and dataset == "world"  # the world's book stays in book/, built from the repository
    out = Path(output) if output else root / ("book" if dataset == "world" else f"book-{dataset}")
    out = _writable_folder(out.resolve())
    chapters, absent = book_chapters(dataset, root)
    if options.execute:
        overrides, full = chapter_plan(dataset, profile, options.subjects, options.device, options.dtype, root)
        saved = os.environ.get("BRAINLDM_PROFILE")
        os.environ["BRAINLDM_PROFILE"] = profile
        keys, stale = {}, []
        for stem in chapters:
            current, keys[stem] = _up_to_date(stem, overrides[stem], out, root)
            if current and not options.rerun:
                log(f"{stem:<28} up to date (inputs unchanged; --rerun executes it again)")
            else:
                stale.append(stem)
        client = cluster = None
        try:
            if scheduler and stale:
                client, cluster = connect(scheduler, options.slurm_config, log=log)
                run_stages(plan_stages(dataset, {stem: full[stem] for stem in stale}), client, log=log)
                environ = brainldm_environment()
                priority = {stem: -rank for rank, stem in enumerate(longest_first(stale, dataset, root))}
                futures = [client.submit(_run_on_worker, stem, overrides[stem], str(out), str(root), environ,
                                         key=f"chapter-{stem}-{time.time_ns()}", pure=False,
                                         priority=priority[stem]) for stem in stale]
                try:
                    for lines in client.gather(futures):
                        for line in lines:
                            log(line)
                    for stem in stale:
                        _record_execution(stem, keys[stem], out)
                except BrainLDMError:
                    raise
                except Exception as error:
                    raise BrainLDMError(f"a chapter failed on the cluster: {type(error).__name__}: {error}") from None
            else:
                for stem in stale:
                    run_chapter(stem, overrides[stem], out, root, log=log)
                    _record_execution(stem, keys[stem], out)
        finally:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
            if saved is None:
                os.environ.pop("BRAINLDM_PROFILE", None)
            else:
                os.environ["BRAINLDM_PROFILE"] = saved
    records = collect_provenance([out / f"{stem}.ipynb" for stem in chapters if (out / f"{stem}.ipynb").exists()])
    (out / "provenance.md").write_text(provenance_page(records))
    source = root
    if not legacy:
        _write_source(out, dataset, profile, root, absent)
        source = out
    jb = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")
    if jb is None:
        raise BrainLDMError("jupyter-book is not installed; run `make book` or pip install -e '.[book]'")
    result = subprocess.run([jb, "build", str(source), "--path-output", str(out), "--warningiserror",
                             "--quiet"], cwd=source, capture_output=True, text=True)
    if result.returncode != 0:
        raise BrainLDMError(f"jupyter-book build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    html = out / "_build" / "html" / "index.html"
    if not inkscape_available():
        log("note: inkscape is not installed, so the flatmaps in this build have no ROI outlines or labels")
    log(f"{'book':<28} ok      {time.perf_counter() - start:6.1f} s  -> {html}")
    if options.publish:
        _publish(html, root, log)
    return html


def smoke_parameters(root=None):
    """Each chapter's small "smoke" parameters on the world (``chapters/profiles.yml``, smoke / world)."""
    return profile_parameters("smoke", "world", root)


def write_reference(key, root=None, log=print, data=None):
    """(Re)write the nbval reference notebook of a chapter, executed with its smoke parameters.

    The kernel gets the test suite's environment (:data:`TEST_ENVIRONMENT` and the data folder
    ``data``, default the tests' ``.data/tests``), so that the reference's outputs are those nbval
    will compare against.
    """
    root = Path(root) if root else project_root()
    stem = find_chapter(key, root).stem
    environment = {**TEST_ENVIRONMENT, "BRAINLDM_DATA": str(data or root / ".data" / "tests")}
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        return run_chapter(stem, smoke_parameters(root).get(stem, {}), root / "tests" / "notebooks", root, log)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
