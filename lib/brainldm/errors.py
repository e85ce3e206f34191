"""User-facing errors, and the checks of a reader's parameters that raise them.

Every error a reader can trigger with a parameter or a missing file is a
:class:`BrainLDMError`: it says what was expected, what was found and how to
fix it. The command line prints its message without a traceback.
"""

import argparse
import math
import os
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["BrainLDMError", "DataError", "CacheError", "ParameterError", "ModelError", "UsageError", "CommandParser",
           "check_choice", "Rule", "check_parameter", "SUBJECT_PATTERN"]


class BrainLDMError(Exception):
    """An error in the reader's input or environment, with a message that says how to fix it."""


class DataError(BrainLDMError):
    """A data file (NSD, ROI volume, stimulus table) is missing, damaged or inconsistent."""


class CacheError(BrainLDMError):
    """The on-disk cache cannot be used (e.g. its folder cannot be created or locked)."""


class ParameterError(BrainLDMError, ValueError):
    """A parameter has a wrong type, is out of range or is not one of the allowed choices."""


class ModelError(BrainLDMError):
    """Model weights are missing, incomplete or damaged, or a model name is unknown."""


class UsageError(BrainLDMError):
    """A command line with an unknown subcommand or option, or an option's value of the wrong kind."""


class CommandParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` that raises :class:`UsageError` instead of printing usage and exiting.

    The ``brainldm`` command line prints the error as one line (``brainldm: error: ...``); ``--help``
    still prints the help and exits 0. Subcommand parsers (``add_subparsers``) are of this class too.
    """

    def error(self, message):
        raise UsageError(f"{message}; see `{self.prog} --help` for the valid options")


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


#: subjects are named subjNN (NSD's eight; the world simulates four of them): never a path
SUBJECT_PATTERN = re.compile(r"subj0[1-8]")

_KINDS = ("int", "float", "bool", "str", "path", "dict", "subject", "any")


@dataclass(frozen=True)
class Rule:
    """What a parameter accepts.

    Attributes
    ----------
    kind : {"int", "float", "bool", "str", "path", "dict", "subject", "any"}
        ``float`` accepts integers; neither accepts booleans; ``float`` refuses NaN and
        infinities; ``subject`` is a ``subjNN`` name.
    low, high : number, optional
        Inclusive bounds, unless ``low_open`` / ``high_open``.
    choices : tuple, optional
        The allowed values (of a ``str`` or of a list's items).
    none : bool
        Whether ``None`` is allowed (it then means the documented default).
    many : bool
        A non-empty list (or tuple) of values of this rule instead of one value.
    multiple_of : int, optional
        For ``int``: the value must be a multiple of this.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    none: bool = False
    many: bool = False
    low_open: bool = False
    high_open: bool = False
    multiple_of: int | None = None

    def describe(self):
        """What the rule allows, in words."""
        if self.choices is not None:
            what = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            what = {"int": "an integer", "float": "a finite number", "bool": "True or False", "str": "a string",
                    "path": "a path (string)", "dict": "a dict", "subject": "a subject name subj01 ... subj08",
                    "any": "any value"}[self.kind]
            if self.low is not None and self.high is not None:
                what += f" in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
            elif self.low is not None:
                what += f" {'>' if self.low_open else '>='} {self.low}"
            elif self.high is not None:
                what += f" {'<' if self.high_open else '<='} {self.high}"
            if self.multiple_of:
                what += f", a multiple of {self.multiple_of}"
        if self.many:
            what = f"a non-empty list, each {what}"
        if self.none:
            what += ", or None (the default)"
        return what


def _fail(name, value, rule, why=""):
    raise ParameterError(f"parameter {name!r} = {value!r} is not allowed{': ' + why if why else ''}; "
                         f"expected {rule.describe()}")


def _check_one(name, value, rule, whole):
    kind = rule.kind
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            _fail(name, whole, rule)
        return bool(value)
    if kind == "int":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
                _fail(name, whole, rule, f"write it as an integer ({int(value)})")
            _fail(name, whole, rule)
        value = int(value)
    elif kind == "float":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            _fail(name, whole, rule)
        value = float(value)
        if not math.isfinite(value):
            _fail(name, whole, rule, "NaN and infinities are not numbers a run can use")
    elif kind == "str":
        if not isinstance(value, str):
            _fail(name, whole, rule)
    elif kind == "path":
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            _fail(name, whole, rule)
    elif kind == "dict":
        if not isinstance(value, dict):
            _fail(name, whole, rule)
        return value
    elif kind == "subject":
        if not isinstance(value, str) or not SUBJECT_PATTERN.fullmatch(value):
            _fail(name, whole, rule)
    if rule.choices is not None and value not in rule.choices:
        _fail(name, whole, rule)
    if rule.low is not None and (value <= rule.low if rule.low_open else value < rule.low):
        _fail(name, whole, rule)
    if rule.high is not None and (value >= rule.high if rule.high_open else value > rule.high):
        _fail(name, whole, rule)
    if rule.multiple_of and value % rule.multiple_of:
        _fail(name, whole, rule)
    return value


def check_parameter(name, value, rule="any", *, low=None, high=None, choices=None, none=False, many=False,
                    **options):
    """Return ``value`` (ints made floats where a float is expected) if it satisfies the rule, else raise.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
    rule : Rule or str
        The rule; or its ``kind`` (see :class:`Rule`), the other fields then given as keywords.
    low, high, choices, none, many, **options
        The rule's other fields when ``rule`` is a kind (see :class:`Rule`); not with a :class:`Rule`.

    Raises
    ------
    ParameterError
        Naming the parameter, the value and what is allowed.

    Examples
    --------
    >>> check_parameter("fdr", 0.05, "float", low=0, high=1, low_open=True, high_open=True)
    0.05
    >>> check_parameter("n_boot", 200, Rule("int", low=10))
    200
    """
    if isinstance(rule, Rule):
        if (low, high, choices, none, many, options) != (None, None, None, False, False, {}):
            raise TypeError("check_parameter takes a Rule or a kind with its fields as keywords, not both")
    else:
        rule = Rule(rule, low, high, tuple(choices) if choices is not None else None, none, many, **options)
    if rule.kind not in _KINDS:
        raise ValueError(f"unknown kind {rule.kind!r} of parameter rule")
    if value is None:
        if rule.none:
            return None
        _fail(name, value, rule)
    if rule.many:
        if not isinstance(value, (list, tuple)) or not value:
            _fail(name, value, rule)
        return type(value)(_check_one(name, item, rule, value) for item in value)
    return _check_one(name, value, rule, value)
