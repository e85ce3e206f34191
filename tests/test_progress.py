"""Progress bars: hidden on request, and never shown against TQDM_DISABLE (set for the tests in conftest)."""

import os

from brainldm.progress import progress_bar


def test_show_false_hides_the_bar():
    assert progress_bar(range(3), show=False).disable


def test_show_true_leaves_tqdm_disable_in_charge():
    assert os.environ.get("TQDM_DISABLE") == "1"
    bar = progress_bar(range(3), show=True, desc="x")
    assert bar.disable
    assert list(bar) == [0, 1, 2]
