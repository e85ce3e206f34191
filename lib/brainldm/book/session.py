"""What every chapter does first: its dataset, its models and its sampler settings, from its parameters.

A chapter's parameters cell names ``dataset``, ``subject``, ``dataset_options``, ``device``,
``dtype``, ``seed`` and (where it samples) ``sampler``, a dict of overrides of
:class:`~brainldm.models.ldm.SamplerSettings`. :func:`open_chapter` turns them into one
:class:`ChapterSession` and prints what was loaded, where, and the run's provenance, so that a
reader of the executed notebook knows exactly what ran.
"""

from dataclasses import dataclass

from brainldm.book.run_record import show_provenance
from brainldm.data.datasets import load_dataset
from brainldm.data.datasets.base import Dataset
from brainldm.models.ldm import SamplerSettings, sampler_settings
from brainldm.models.loading import ModelSet, describe_placement, load_models

__all__ = ["ChapterSession", "open_chapter"]


@dataclass(frozen=True)
class ChapterSession:
    """A chapter's dataset, models (None for a chapter without models) and sampler settings (or None)."""

    ds: Dataset
    models: ModelSet = None
    sampler: SamplerSettings = None

    @property
    def dataset(self):
        """The dataset's name (``"world"`` or ``"nsd"``)."""
        return self.ds.name


def open_chapter(parameters, purpose="reconstruction", models=True):
    """Load a chapter's dataset, models and sampler settings from its parameters, and say what was loaded.

    Parameters
    ----------
    parameters : dict
        The chapter's namespace (``globals()``): ``dataset``, ``subject``, and optionally
        ``dataset_options``, ``device``, ``dtype``, ``seed`` and ``sampler``.
    purpose : {"reconstruction", "encoding"} or None
        Which defaults of :data:`brainldm.models.ldm.SAMPLER_DEFAULTS` the sampler starts from;
        None for a chapter that does not sample.
    models : bool
        Load the dataset's models (on ``device``, in ``dtype``).

    Returns
    -------
    session : ChapterSession
    """
    dataset = parameters.get("dataset", "world")
    ds = load_dataset(dataset, subject=parameters.get("subject", "subj01"),
                      **(parameters.get("dataset_options") or {}))
    model_set = load_models(dataset, device=parameters.get("device"), dtype=parameters.get("dtype")) if models else None
    sampler = None
    if purpose is not None:
        overrides = {"seed": parameters.get("seed", 0), **(parameters.get("sampler") or {})}
        sampler = sampler_settings(dataset, purpose, **overrides)
    print(ds)
    if model_set is not None:
        print(describe_placement(model_set))
        print(f"models: {model_set.name}; z {model_set.latent_shape()} at {model_set.resolution} px, "
              f"c {model_set.c_shape()}")
    if sampler is not None:
        changed = {k: v for k, v in sampler.as_dict().items() if v != getattr(SamplerSettings(), k)}
        print(f"sampler ({purpose}): " + ", ".join(f"{k}={v}" for k, v in sampler.as_dict().items()
                                                   if k in changed or k in ("strength", "num_inference_steps")))
    show_provenance({**parameters, "ds": ds, "models": model_set})
    return ChapterSession(ds, model_set, sampler)
