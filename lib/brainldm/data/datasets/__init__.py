"""Datasets: the embedded procedural ``world`` and the Natural Scenes Dataset (``nsd``).

Both implement :class:`~brainldm.data.datasets.base.Dataset`, so everything
downstream of :func:`load_dataset` is the same code.
"""

import dataclasses
import importlib
import inspect

from brainldm.errors import ParameterError, Rule, check_choice, check_parameter
from brainldm.data.datasets.base import SPLITS, Dataset

__all__ = ["load_dataset", "DATASETS", "SUBJECTS", "Dataset", "SPLITS", "DATASET_OPTIONS", "check_dataset_options"]

#: dataset name -> "module:class", imported on first use
DATASETS = {
    "world": "brainldm.data.datasets.world:WorldDataset",
    "nsd": "brainldm.data.datasets.nsd:NSDDataset",
}

#: the subjects whose analyses the book reports (NSD's four complete subjects)
SUBJECTS = ("subj01", "subj02", "subj05", "subj07")


#: dataset -> option -> rule (options of the dataset class without a rule are passed unchecked)
DATASET_OPTIONS = {
    "world": {
        "seed": Rule("int", low=0, high=2 ** 32 - 1),
        "n_train": Rule("int", low=1),
        "n_test": Rule("int", low=2),
        "n_repeats": Rule("int", low=1),
        "image_size": Rule("int", low=16, multiple_of=16),
    },
    "nsd": {
        "root": Rule("path", none=True),
        "sessions": Rule("int", low=1, none=True),
        "zscore": Rule("bool"),
        "voxels": Rule("str", many=True, none=True),
        "rois": Rule("dict", none=True),
        "betas_format": Rule("str", choices=("auto", "hdf5", "nii")),
        "annotations": Rule("path", none=True),
        "cache": Rule("bool"),
    },
}


def _dataset_class(name):
    module, cls = DATASETS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def check_dataset_options(name, options):
    """Check the keyword arguments of ``load_dataset(name, subject, **options)`` before anything is loaded.

    Unknown keys are an error that lists the valid ones (the dataset class' own keyword
    arguments, or the fields of its ``options_class``); known keys are checked against
    :data:`DATASET_OPTIONS`.

    Returns
    -------
    options : dict
    """
    if name not in DATASETS:
        raise ParameterError(f"unknown dataset {name!r}; valid choices are: {', '.join(map(repr, DATASETS))}")
    if not isinstance(options, dict):
        raise ParameterError(f"dataset_options must be a dict of keyword arguments of the {name} dataset, got "
                             f"{options!r}")
    cls = _dataset_class(name)
    if getattr(cls, "options_class", None) is not None:
        valid = [field.name for field in dataclasses.fields(cls.options_class)]
    else:
        signature = inspect.signature(cls.__init__)
        valid = [p for p in signature.parameters if p not in ("self", "subject")
                 and signature.parameters[p].kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                          inspect.Parameter.VAR_KEYWORD)]
    unknown = [key for key in options if key not in valid]
    if unknown:
        raise ParameterError(f"unknown option(s) {', '.join(map(repr, unknown))} of the {name} dataset "
                             f"(dataset_options); valid options are: {', '.join(valid)}")
    rules = DATASET_OPTIONS.get(name, {})
    checked = {}
    for key, value in options.items():
        rule = rules.get(key)
        if key == "voxels" and isinstance(value, str):
            rule = Rule("str")
        checked[key] = value if rule is None else check_parameter(f"dataset_options[{key!r}]", value, rule)
    return checked


def load_dataset(name="world", subject="subj01", **options):
    """Load one subject of a dataset.

    Parameters
    ----------
    name : {"world", "nsd"}
        ``world`` is generated here from a seed; ``nsd`` reads a local copy of the
        Natural Scenes Dataset (see ``brainldm.data.datasets.nsd``).
    subject : str
        e.g. ``"subj01"``.
    **options
        Passed to the dataset class (sizes and seed for ``world``, ``root`` and
        ``sessions`` for ``nsd``).

    Returns
    -------
    dataset : Dataset
    """
    check_choice("dataset", name, DATASETS)
    options = check_dataset_options(name, options)  # unknown keys, types and ranges, before anything is loaded
    module, cls = DATASETS[name].split(":")
    dataset = getattr(importlib.import_module(module), cls)(subject=subject, **options)
    dataset._load_options = dict(options)  # for dataset.with_subject(...)
    return dataset
