"""Validation of every parameter a reader sets, up front and with one message each.

:func:`check_parameter` checks one value against a rule (type, range, choices) and raises a
:class:`~brainldm.errors.ParameterError` that names the parameter, the value and what is
allowed. :data:`CHAPTER_PARAMETERS` is the rule of every chapter parameter (the book runner
checks a chapter's parameters with :func:`check_chapter_parameters` before executing
anything); :func:`check_dataset_options` checks ``dataset_options`` (the keyword arguments of
:func:`brainldm.data.datasets.load_dataset`) against the dataset's own options.
"""

import inspect


from brainldm.errors import SUBJECT_PATTERN, ParameterError, Rule, check_parameter

__all__ = ["check_chapter_parameters", "check_dataset_options", "CHAPTER_PARAMETERS", "CHAPTER_OVERRIDES",
           "DATASET_OPTIONS"]

def _positive(none=False, low=1):
    return Rule("int", low=low, none=none)


def _probability(none=False):
    return Rule("float", low=0, high=1, low_open=True, high_open=True, none=none)


#: the rule of every chapter parameter, by name (see :data:`CHAPTER_OVERRIDES` for per-chapter exceptions)
CHAPTER_PARAMETERS = {
    "dataset": Rule("str", choices=("world", "nsd")),
    "dataset_options": Rule("dict"),
    "subject": Rule("str"),  # and one of the dataset's subjects (check_chapter_parameters)
    "subjects": Rule("str", many=True),
    "seed": Rule("int", low=0, high=2 ** 32 - 1),
    "device": Rule("str", none=True),
    "dtype": Rule("str", choices=("float32", "float16", "bfloat16"), none=True),
    "protocol": Rule("str", choices=("authors", "brainldm"), none=True),
    # img2img: strength in (0, 1]; guidance 1 = no classifier-free guidance (diffusers turns it off below 1)
    "strength": Rule("float", low=0, high=1, low_open=True, none=True),
    "strengths": Rule("float", low=0, high=1, low_open=True, many=True),
    "guidance_scale": Rule("float", low=1, high=100, none=True),
    "num_inference_steps": _positive(none=True),
    "n_samples": _positive(none=True),
    "baseline_samples": _positive(none=True),
    "effect_samples": _positive(),
    "n_images": _positive(none=True),
    "n_examples": _positive(),
    "n_shown": _positive(),
    "n_show": _positive(),
    "n_train": _positive(none=True, low=2),
    "n_eval": _positive(low=2),
    "n_boot": _positive(low=10),
    "n_fresh": _positive(none=True),
    "n_search": _positive(none=True),
    "n_iterations": _positive(),
    "iterations": _positive(none=True),
    "pool": _positive(none=True),
    "fdr": _probability(),
    "lr": Rule("float", low=0, high=10, low_open=True, none=True),
    "cosine_threshold": Rule("float", low=-1, high=1),
    "hamming_threshold": Rule("int", low=0, high=64),
    "layers": Rule("str", choices=("early", "middle", "late"), many=True),
    "layer_weights": Rule("dict", none=True),
    "loss": Rule("str", choices=("correlation", "mse")),
    "optimize": Rule("str", choices=("z", "c"), many=True),
    "roi": Rule("str", many=True),
    "rule": Rule("str", choices=("both", "either", "embedding", "phash")),
    "through": Rule("str", choices=("sampler", "decoder")),
    "oracle": Rule("bool"),
    "viewer": Rule("bool"),
    "overlap_id_kind": Rule("str", choices=("nsd", "nsd1", "coco")),
    "overlap_ids": Rule("path", none=True),
    "pool_images": Rule("path", none=True),
}

#: (chapter number, parameter) -> rule, where a chapter documents another meaning
CHAPTER_OVERRIDES = {
    (chapter, "n_images"): Rule("int", low=0, none=True)  # "0: all"
    for chapter in ("04", "05", "06", "07")
}


def _check_layer_weights(value):
    if value is None:
        return None
    layers = CHAPTER_PARAMETERS["layers"].choices
    for key, weight in value.items():
        check_parameter("layer_weights (key)", key, "str", choices=layers)
        check_parameter(f"layer_weights[{key!r}]", weight, "float", low=0)
    return value


def check_chapter_parameters(parameters, chapter=None, rules=None):
    """Check every parameter of a chapter run (defaults and overrides together), before any work.

    Parameters
    ----------
    parameters : dict
        Name to value, as the chapter will see them.
    chapter : str, optional
        The chapter's file stem (``"04_decode_captions"``), for :data:`CHAPTER_OVERRIDES`; without it,
        a name with an override takes the override (the more permissive rule).
    rules : dict, optional
        Name to :class:`Rule`; :data:`CHAPTER_PARAMETERS` by default. Parameters without a rule
        are not checked here.

    Returns
    -------
    parameters : dict
        With integers made floats where a float is expected.
    """
    rules = CHAPTER_PARAMETERS if rules is None else rules
    number = str(chapter).split("_", 1)[0] if chapter else None
    checked = {}
    for name, value in parameters.items():
        if number:
            rule = CHAPTER_OVERRIDES.get((number, name))
        else:  # chapter unknown: a chapter's more permissive rule of the name, if any
            rule = next((r for (_, n), r in CHAPTER_OVERRIDES.items() if n == name), None)
        rule = rule or rules.get(name)
        checked[name] = value if rule is None else check_parameter(name, value, rule=rule)
    dataset = checked.get("dataset", "world")
    for name in ("subject", "subjects"):
        if name in checked and dataset in ("world", "nsd"):
            from brainldm.data.datasets import SUBJECTS
            from brainldm.data.datasets.nsd import NSD_SUBJECTS

            valid = SUBJECTS if dataset == "world" else NSD_SUBJECTS
            for subject in checked[name] if name == "subjects" else [checked[name]]:
                if subject not in valid:
                    raise ParameterError(f"parameter {name!r} of the {dataset} dataset: unknown subject {subject!r}; "
                                         f"valid choices are: {', '.join(map(repr, valid))}")
    if "layer_weights" in checked:
        _check_layer_weights(checked["layer_weights"])
    if "dataset_options" in checked:
        check_dataset_options(checked.get("dataset", "world"), checked["dataset_options"])
    for name in ("subjects", "optimize", "layers", "roi", "strengths"):
        if name in checked and len(set(checked[name])) != len(checked[name]):
            raise ParameterError(f"parameter {name!r} = {checked[name]!r} lists a value twice")
    return checked


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
    import importlib

    from brainldm.data.datasets import DATASETS

    module, cls = DATASETS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def check_dataset_options(name, options):
    """Check the keyword arguments of ``load_dataset(name, subject, **options)`` before anything is loaded.

    Unknown keys are an error that lists the valid ones (the dataset class' own keyword
    arguments); known keys are checked against :data:`DATASET_OPTIONS`.

    Returns
    -------
    options : dict
    """
    from brainldm.data.datasets import DATASETS

    if name not in DATASETS:
        raise ParameterError(f"unknown dataset {name!r}; valid choices are: {', '.join(map(repr, DATASETS))}")
    if not isinstance(options, dict):
        raise ParameterError(f"dataset_options must be a dict of keyword arguments of the {name} dataset, got "
                             f"{options!r}")
    signature = inspect.signature(_dataset_class(name).__init__)
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
        checked[key] = value if rule is None else check_parameter(f"dataset_options[{key!r}]", value, rule=rule)
    return checked
