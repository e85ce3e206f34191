"""Progress bars: one rule for every expensive loop in the package.

A bar is shown unless its caller asks for none (``show=False``) or the
environment hides every bar (``TQDM_DISABLE=1``: the tests and the book runner
set it, so that executed notebooks keep no progress output).
"""

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(iterable=None, show=True, **kwargs):
    """A tqdm bar over ``iterable`` (or of ``total=``), hidden if ``show`` is false.

    An explicit ``disable=False`` would override ``TQDM_DISABLE``; this never passes one.
    """
    if not show:
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
