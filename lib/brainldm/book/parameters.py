"""Every chapter parameter a reader sets, checked up front with one message each.

:data:`CHAPTER_PARAMETERS` is the rule (:class:`brainldm.errors.Rule`) of every chapter parameter;
the book runner checks a chapter's parameters with :func:`check_chapter_parameters` before
executing anything. ``dataset_options`` go to :func:`brainldm.data.datasets.check_dataset_options`
and ``sampler`` to :class:`brainldm.models.ldm.SamplerSettings`.
"""

from brainldm.data.datasets import SUBJECTS, check_dataset_options
from brainldm.data.datasets.nsd import NSD_SUBJECTS
from brainldm.errors import ParameterError, Rule, check_parameter
from brainldm.models.ldm import SamplerSettings

__all__ = ["check_chapter_parameters", "CHAPTER_PARAMETERS", "CHAPTER_OVERRIDES"]

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
    # overrides of brainldm.models.ldm.SamplerSettings, checked by SamplerSettings itself
    "sampler": Rule("dict"),
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
        check_parameter("layer_weights (key)", key, Rule("str", choices=layers))
        check_parameter(f"layer_weights[{key!r}]", weight, Rule("float", low=0))
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
        checked[name] = value if rule is None else check_parameter(name, value, rule)
    dataset = checked.get("dataset", "world")
    for name in ("subject", "subjects"):
        if name in checked and dataset in ("world", "nsd"):
            valid = SUBJECTS if dataset == "world" else NSD_SUBJECTS
            for subject in checked[name] if name == "subjects" else [checked[name]]:
                if subject not in valid:
                    raise ParameterError(f"parameter {name!r} of the {dataset} dataset: unknown subject {subject!r}; "
                                         f"valid choices are: {', '.join(map(repr, valid))}")
    if "layer_weights" in checked:
        _check_layer_weights(checked["layer_weights"])
    if checked.get("sampler"):
        SamplerSettings().replace(**checked["sampler"])  # a ParameterError names a bad key or value
    if "dataset_options" in checked:
        check_dataset_options(checked.get("dataset", "world"), checked["dataset_options"])
    for name in ("subjects", "optimize", "layers", "roi", "strengths"):
        if name in checked and len(set(checked[name])) != len(checked[name]):
            raise ParameterError(f"parameter {name!r} = {checked[name]!r} lists a value twice")
    return checked
