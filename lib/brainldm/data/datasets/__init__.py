"""Datasets: the embedded procedural ``world`` and the Natural Scenes Dataset (``nsd``).

Both implement :class:`~brainldm.data.datasets.base.Dataset`, so everything
downstream of :func:`load_dataset` is the same code.
"""

import importlib

from brainldm.errors import check_choice
from brainldm.data.datasets.base import SPLITS, Dataset

__all__ = ["load_dataset", "DATASETS", "SUBJECTS", "Dataset", "SPLITS"]

#: dataset name -> "module:class", imported on first use
DATASETS = {
    "world": "brainldm.data.datasets.world:WorldDataset",
    "nsd": "brainldm.data.datasets.nsd:NSDDataset",
}

#: the subjects whose analyses the book reports (NSD's four complete subjects)
SUBJECTS = ("subj01", "subj02", "subj05", "subj07")


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
    from brainldm.book.parameters import check_dataset_options

    check_choice("dataset", name, DATASETS)
    options = check_dataset_options(name, options)  # unknown keys, types and ranges, before anything is loaded
    module, cls = DATASETS[name].split(":")
    return getattr(importlib.import_module(module), cls)(subject=subject, **options)
