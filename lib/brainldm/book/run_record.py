"""Provenance: what produced a page — code, packages, weights, data, device, seeds, profile.

:func:`provenance` returns it as a dict (how the run ran, its :class:`RunSettings`, beside its data and
models); :func:`provenance_lines` as text (``brainldm check``
prints it); :func:`show_provenance` displays a short, collapsed block at the top of a chapter,
and ``brainldm book`` gathers every chapter's block into the book's provenance page
(:func:`collect_provenance`, :func:`provenance_page`).

In a chapter::

    show_provenance(globals())   # reads dataset, subject(s), ds, models, device, dtype, seed

The block is one display output with three one-line renderings: :data:`MIME` (the record as
JSON), ``text/html`` (a collapsed ``<details>`` block) and ``text/plain``; the nbval tests blank
all three with the regexes of ``tests/sanitize.cfg``, so the reference notebooks do not depend on
the commit or the machine. ``BRAINLDM_PROVENANCE=0`` shows nothing.
"""

import functools
import hashlib
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from brainldm import __version__
from brainldm.models.zoo import MODELS, search
from brainldm.settings import cache_dir, models_dir, nsd_root, project_root, torch_device, torch_dtype

__all__ = ["MIME", "RunSettings", "provenance", "provenance_lines", "show_provenance", "collect_provenance", "provenance_page",
           "git_state", "model_hashes"]

#: the record travels as a one-line JSON string under this MIME type (a text type, so that
#: tests/sanitize.cfg can blank it like the other two renderings, for the nbval references)
MIME = "text/x-brainldm-provenance"
PACKAGES = ("brainldm", "torch", "diffusers", "transformers", "himalaya", "numpy")
#: files at most this large are hashed whole; larger ones (weights) by name and size
_SMALL = 1 << 20
_WEIGHTS = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".msgpack", ".h5", ".onnx")


@functools.lru_cache(maxsize=None)
def git_state(root=None):
    """``(commit, dirty)`` of the repository at ``root`` (default: this checkout); ``(None, None)`` without git."""

    try:
        root = str(root or project_root())
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=20).stdout.strip() or None
        status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=60)
        return commit, (bool(status.stdout.strip()) if status.returncode == 0 else None)
    except Exception:  # no git, not a checkout: provenance must never stop a chapter
        return None, None


def _version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _folder_digest(folder):
    """sha256 (16 hex) of a model folder: configs and small files by content, weights by name and size."""
    folder = Path(folder)
    digest = hashlib.sha256()
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file()
                                                     and ".cache" not in p.parts)
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder) if path != folder else path.name}:{size}\n".encode())
        if size <= _SMALL or not path.name.endswith(_WEIGHTS):
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _world_hashes():
    weights = Path(__file__).resolve().parents[1] / "models" / "world" / "weights"  # models.world.weights_dir, without torch
    out = {"model_card": _folder_digest(weights / "model_card.json")} if (weights / "model_card.json").exists() else {}
    for folder in sorted(p for p in weights.iterdir() if p.is_dir()):
        digest = hashlib.sha256()  # the world's weights are small: every file by content
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(folder)}\n".encode())
            digest.update(path.read_bytes())
        out[folder.name] = digest.hexdigest()[:16]
    return out


@functools.lru_cache(maxsize=None)
def _nsd_hashes(models):
    out = {}
    for name in MODELS:
        path, _ = search(name, models)
        out[name] = _folder_digest(path) if path is not None else "missing"
    return out


def model_hashes(dataset="world", models=None):
    """A digest of each model folder: the world's shipped weights, or NSD's under ``BRAINLDM_MODELS``.

    Configs, indexes and other small files are hashed by content; weights files above 1 MB
    by name and size (hashing gigabytes of Stable Diffusion on every page would cost minutes).
    """
    if dataset == "world":
        return dict(_world_hashes())
    return dict(_nsd_hashes(str(models_dir(models))))


def _seeds(namespace):
    return {name: namespace[name] for name in sorted(namespace) if (name == "seed" or name.endswith("_seed"))
            and isinstance(namespace[name], int) and not isinstance(namespace[name], bool)}


@dataclass(frozen=True)
class RunSettings:
    """How a run ran, beside its data and models: the part of :func:`provenance` a chapter chooses.

    Attributes
    ----------
    chapter : str, optional
    device, dtype : optional
        As the chapter asked; resolved by :func:`brainldm.settings.torch_device` / ``torch_dtype``.
    seeds : dict, optional
        Name to seed.
    profile : str, optional
        Default ``BRAINLDM_PROFILE`` (``brainldm book`` sets it).
    """

    chapter: str = None
    device: str = None
    dtype: str = None
    seeds: dict = None
    profile: str = None


def provenance(dataset="world", subjects=None, ds=None, models=None, dataset_options=None, settings=None):
    """The provenance record of a run, as a JSON-serialisable dict.

    Parameters
    ----------
    dataset : str
    subjects : list of str, optional
    ds : Dataset, optional
        Its ``cache_token`` fingerprints the stimuli.
    models : ModelSet, optional
        Its ``cache_token`` (a digest of the loaded VAE and U-Net).
    dataset_options : dict, optional
    settings : RunSettings, optional
        The chapter, device, dtype, seeds and profile.
    """
    settings = settings or RunSettings()
    device, dtype = settings.device, settings.dtype
    commit, dirty = git_state()
    try:
        resolved_device = str(torch_device(device))
        resolved_dtype = str(torch_dtype(dtype, resolved_device)).removeprefix("torch.")
    except Exception as error:  # an invalid choice is the chapter's error to raise, not ours
        resolved_device, resolved_dtype = f"{device} ({error})", str(dtype)
    fingerprint = {"name": dataset, "subjects": list(subjects or []), "options": dataset_options or {}}
    if ds is not None:
        fingerprint["cache_token"] = str(getattr(ds, "cache_token", ""))
    if dataset == "nsd":
        fingerprint["root"] = str(nsd_root())
    record = {
        "chapter": settings.chapter,
        "git_commit": commit, "git_dirty": dirty,
        "versions": {name: (__version__ if name == "brainldm" else _version(name)) for name in PACKAGES},
        "python": platform.python_version(),
        "models": model_hashes(dataset),
        "dataset": fingerprint,
        "device": resolved_device, "dtype": resolved_dtype,
        "seeds": dict(settings.seeds or {}),
        "profile": settings.profile or os.environ.get("BRAINLDM_PROFILE") or "default",
        "cache": str(cache_dir()),
    }
    if models is not None:
        record["models_loaded"] = str(getattr(models, "cache_token", ""))
    return record


def provenance_lines(record):
    """The record as a few lines of text (what ``brainldm check`` prints)."""
    commit = record["git_commit"] or "unknown"
    dirty = {True: " (uncommitted changes)", False: "", None: ""}[record["git_dirty"]]
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items() if v)
    ds = record["dataset"]
    data = ds["name"] + (f" {', '.join(ds['subjects'])}" if ds["subjects"] else "")
    if ds.get("options"):
        data += f" {ds['options']}"
    if ds.get("cache_token"):
        data += f" (stimuli {ds['cache_token']})"
    lines = ([f"chapter: {record['chapter']}"] if record.get("chapter") else []) + [
        f"code: git {commit[:12]}{dirty}, python {record['python']}",
        f"packages: {versions}",
        "models: " + ", ".join(f"{k} {v}" for k, v in record["models"].items()),
        f"data: {data}",
        f"device: {record['device']} in {record['dtype']}; seeds: "
        + (", ".join(f"{k}={v}" for k, v in record["seeds"].items()) or "none"),
        f"profile: {record['profile']}",
    ]
    if record.get("models_loaded"):
        lines.insert(3, f"loaded: {record['models_loaded']}")
    return lines


def _html(record):
    import html

    rows = "".join(f"<li>{html.escape(line)}</li>" for line in provenance_lines(record))
    return (f'<details class="brainldm-provenance"><summary>Provenance: git '
            f'{html.escape((record["git_commit"] or "unknown")[:12])}{"+dirty" if record["git_dirty"] else ""}, '
            f'{html.escape(record["dataset"]["name"])}, {html.escape(record["device"])} '
            f'{html.escape(record["dtype"])}, profile {html.escape(record["profile"])}</summary>'
            f'<ul style="font-size: 0.85em">{rows}</ul></details>')


def show_provenance(namespace, chapter=None):
    """Display a chapter's provenance block, from its namespace (``globals()``).

    Reads ``dataset`` (default ``"world"``), ``subject`` / ``subjects``, ``dataset_options``,
    ``ds``, ``models``, ``device``, ``dtype`` and every ``seed`` / ``*_seed`` there. Shows
    nothing when ``BRAINLDM_PROVENANCE`` is ``0``. Returns the record.
    """
    subjects = namespace.get("subjects")
    subject = namespace.get("subject")
    subjects = ([subject] if subject else []) + [s for s in (subjects or []) if s != subject]
    settings = RunSettings(chapter=chapter or os.environ.get("BRAINLDM_CHAPTER"), device=namespace.get("device"),
                           dtype=namespace.get("dtype"), seeds=_seeds(namespace))
    record = provenance(dataset=namespace.get("dataset", "world"), subjects=subjects, ds=namespace.get("ds"),
                        models=namespace.get("models"), dataset_options=namespace.get("dataset_options"),
                        settings=settings)
    if os.environ.get("BRAINLDM_PROVENANCE", "1") == "0":
        return record
    from IPython.display import display

    plain = "provenance: " + "; ".join(provenance_lines(record))
    display({MIME: json.dumps({"brainldm_provenance": record}, default=str), "text/html": _html(record),
             "text/plain": plain}, raw=True)
    return None


def collect_provenance(notebooks):
    """The provenance records found in executed notebooks: ``{notebook stem: record}`` (None where absent)."""
    import nbformat

    found = {}
    for path in notebooks:
        path = Path(path)
        nb = nbformat.read(path, as_version=4)
        text = next((o["data"][MIME] for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if MIME in o.get("data", {})), None)
        found[path.stem] = None if text is None else json.loads(text)["brainldm_provenance"]
    return found


def provenance_page(records, title="Provenance", intro=None):
    """A Markdown page gathering each chapter's provenance record (``brainldm book`` writes it)."""
    lines = [f"# {title}", "",
             intro or ("What produced each page of this book: the code's git commit, package versions, a digest "
                       "of each model folder, the dataset's fingerprint, device and precision, seeds and profile. "
                       "`brainldm check` prints the same for this machine."), ""]
    for stem, record in records.items():
        lines += [f"## {stem}", ""]
        if record is None:
            lines += ["No provenance was recorded on this page (executed before provenance existed, or with "
                      "`BRAINLDM_PROVENANCE=0`).", ""]
            continue
        lines += ["```text", *provenance_lines(record), "```", ""]
    return "\n".join(lines)
