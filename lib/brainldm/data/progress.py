"""Progress bars: one rule for every expensive loop in the package, and for the libraries'.

A bar is shown only on a terminal: when standard error is not one (a Jupyter kernel, so
every chapter page of the book; a log file) it is hidden, and so are the bars of
transformers, diffusers and huggingface_hub while models load (:func:`quiet_libraries`).
``BRAINLDM_PROGRESS=1`` shows them anyway (a batch job's log), and a caller hides its bar
with ``show=False``. ``TQDM_DISABLE=1`` (set by the tests) hides every bar.

tqdm's "IProgress not found" warning (tqdm.auto, imported by huggingface_hub, in a Jupyter
kernel without ipywidgets) is filtered from the moment this module or
:func:`quiet_libraries` runs: a chapter page would show it with the machine's venv path.
"""

import importlib
import os
import sys
import warnings

from tqdm import TqdmWarning, tqdm

__all__ = ["progress_bar", "progress_shown", "quiet_libraries"]

_NOTEBOOK_WARNING = "IProgress not found"


def _filter_notebook_warning():
    warnings.filterwarnings("ignore", message=_NOTEBOOK_WARNING, category=TqdmWarning)


_filter_notebook_warning()


def progress_shown(stream=None):
    """Whether bars are shown: ``BRAINLDM_PROGRESS`` (1 or 0) if set, else whether ``stream`` is a terminal.

    ``stream`` defaults to standard error, where tqdm writes.
    """
    forced = os.environ.get("BRAINLDM_PROGRESS", "").strip()
    if forced:
        return forced not in ("0", "false", "no", "off")
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable=None, show=True, **kwargs):
    """A tqdm bar over ``iterable`` (or of ``total=``), hidden unless ``show`` and :func:`progress_shown`.

    An explicit ``disable=False`` would override ``TQDM_DISABLE``; this never passes one.
    """
    if not show or not progress_shown(kwargs.get("file")):
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)


def quiet_libraries():
    """Hide the model libraries' bars ("Loading weights", "Loading pipeline components") off a terminal.

    Called where models load (:func:`brainldm.models.loading.load_models`, :func:`brainldm.models.zoo.load`),
    before transformers or diffusers are imported: it also filters tqdm's ipywidgets warning.
    A library that is not installed is skipped; on a terminal the bars stay.
    """
    _filter_notebook_warning()
    if progress_shown():
        return
    for module, function in (("huggingface_hub.utils", "disable_progress_bars"),
                             ("transformers.utils.logging", "disable_progress_bar"),
                             ("diffusers.utils.logging", "disable_progress_bar")):
        try:
            getattr(importlib.import_module(module), function)()
        except (ImportError, AttributeError):
            continue
