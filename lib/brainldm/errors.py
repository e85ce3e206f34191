"""User-facing errors.

Every error a reader can trigger with a parameter or a missing file is a
:class:`BrainLDMError`: it says what was expected, what was found and how to
fix it. The command line prints its message without a traceback.
"""

__all__ = ["BrainLDMError", "DataError", "CacheError", "ParameterError", "check_choice"]


class BrainLDMError(Exception):
    """An error in the reader's input or environment, with a message that says how to fix it."""


class DataError(BrainLDMError):
    """A data file (NSD, ROI volume, stimulus table, model weights) is missing, damaged or inconsistent."""


class CacheError(BrainLDMError):
    """The on-disk cache cannot be used (e.g. its folder cannot be created or locked)."""


class ParameterError(BrainLDMError, ValueError):
    """A parameter has a wrong type, is out of range or is not one of the allowed choices."""


def check_choice(kind, value, choices):
    """Return ``value`` if it is one of ``choices``, else raise a clear :class:`BrainLDMError`.

    Parameters
    ----------
    kind : str
        What is being chosen ("subject", "ROI", "dataset"...), used in the message.
    value : object
        The value given.
    choices : iterable
        The valid values.
    """
    choices = list(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise BrainLDMError(f"unknown {kind} {value!r}; valid choices are: {valid}")
    return value
