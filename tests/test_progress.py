"""Progress bars: only on a terminal, hidden on request and under TQDM_DISABLE (set for the tests in
conftest); the model libraries' bars hidden off a terminal; tqdm's notebook warning filtered."""

import io
import os
import sys
import warnings

import pytest
from tqdm import TqdmWarning

from brainldm.data import progress
from brainldm.data.progress import progress_bar, progress_shown, quiet_libraries


class _Terminal(io.StringIO):
    def isatty(self):
        return True


class _NoIsatty:
    def write(self, text):
        pass


@pytest.fixture
def no_override(monkeypatch):
    monkeypatch.delenv("BRAINLDM_PROGRESS", raising=False)


def test_show_false_hides_the_bar():
    assert progress_bar(range(3), show=False).disable


def test_show_true_leaves_tqdm_disable_in_charge():
    assert os.environ.get("TQDM_DISABLE") == "1"
    bar = progress_bar(range(3), show=True, desc="x")
    assert bar.disable
    assert list(bar) == [0, 1, 2]


def test_bars_show_on_a_terminal_only(no_override, monkeypatch):
    assert progress_shown(_Terminal())
    assert not progress_shown(io.StringIO())  # a Jupyter kernel's stderr, a log file
    assert not progress_shown(_NoIsatty())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress_shown()
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert progress_shown()


@pytest.mark.parametrize("value, shown", [("1", True), ("yes", True), ("0", False), ("off", False)])
def test_brainldm_progress_overrides_the_terminal_rule(monkeypatch, value, shown):
    monkeypatch.setenv("BRAINLDM_PROGRESS", value)
    assert progress_shown(io.StringIO()) is shown
    assert progress_shown(_Terminal()) is shown


def test_off_a_terminal_the_bar_is_disabled_and_on_one_tqdm_decides(no_override, monkeypatch):
    calls = []
    monkeypatch.setattr(progress, "tqdm", lambda iterable=None, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    progress_bar(range(3), desc="x")
    monkeypatch.setattr(sys, "stderr", _Terminal())
    progress_bar(range(3), desc="x")
    progress_bar(range(3), desc="x", show=False)
    progress_bar(range(3), desc="x", file=io.StringIO())  # the stream the bar writes to decides
    assert [c.get("disable") for c in calls] == [True, None, True, True]  # never an explicit disable=False


@pytest.fixture
def library_bars():
    """The libraries' progress-bar switches, restored afterwards."""
    import diffusers.utils.logging as diffusers_logging
    import huggingface_hub.utils as hub
    import transformers.utils.logging as transformers_logging

    before = (transformers_logging.is_progress_bar_enabled(), diffusers_logging.is_progress_bar_enabled(),
              hub.are_progress_bars_disabled())
    transformers_logging.enable_progress_bar()
    diffusers_logging.enable_progress_bar()
    hub.enable_progress_bars()
    yield lambda: (transformers_logging.is_progress_bar_enabled(), diffusers_logging.is_progress_bar_enabled(),
                   not hub.are_progress_bars_disabled())
    for module, on in ((transformers_logging, before[0]), (diffusers_logging, before[1])):
        module.enable_progress_bar() if on else module.disable_progress_bar()
    hub.disable_progress_bars() if before[2] else hub.enable_progress_bars()


def test_quiet_libraries_hides_loading_bars_off_a_terminal(no_override, monkeypatch, library_bars):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    quiet_libraries()
    assert library_bars() == (False, False, False)


def test_quiet_libraries_leaves_them_on_a_terminal(no_override, monkeypatch, library_bars):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    quiet_libraries()
    assert library_bars() == (True, True, True)


def test_tqdms_notebook_warning_is_filtered(monkeypatch):
    monkeypatch.setenv("BRAINLDM_PROGRESS", "1")  # the filter only: leave the libraries' bars alone
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_libraries()
        warnings.warn("IProgress not found. Please update jupyter and ipywidgets.", TqdmWarning)
        warnings.warn("another tqdm warning", TqdmWarning)
    assert [str(w.message) for w in caught] == ["another tqdm warning"]
