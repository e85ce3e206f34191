"""The real models of NSD runs: where their weights are, and loading them offline.

Each model is looked for in two places, in order:

1. the model folder (:func:`brainldm.settings.models_dir`, ``BRAINLDM_MODELS``), under its
   Hugging Face id, e.g. ``$BRAINLDM_MODELS/CompVis/stable-diffusion-v1-4/``; torchvision
   weights files go in ``$BRAINLDM_MODELS/torchvision/``;
2. the Hugging Face cache (``HF_HUB_CACHE``, e.g. ``~/.cache/huggingface/hub``), or for
   torchvision weights torch hub's cache (``$TORCH_HOME/hub/checkpoints``).

Nothing is ever downloaded (``local_files_only=True``); a model that is in neither place
raises one :class:`~brainldm.errors.ModelError` that names both places and the
command that fetches it on a machine with network.

=================  ======================================  =============================================
name               weights                                 used for
=================  ======================================  =============================================
``sd-v1-4``        ``CompVis/stable-diffusion-v1-4``       img2img reconstruction (``X_z``, ``X_c``, ``X_zc``)
``sd-2-depth``     ``stabilityai/stable-diffusion-2-depth``  ``+D``: reconstruction from decoded depth
``blip``           ``Salesforce/blip-image-captioning-base``   ``+T``: captions decoded from fMRI (ViT-B, CapFilt-L)
``dpt-large``      ``Intel/dpt-large``                     depth maps of the stimuli
``clip-vit-l14``   ``openai/clip-vit-large-patch14``       identification (CLIP layers), MindDiffuser
``alexnet``        torchvision AlexNet (IMAGENET1K_V1)     AlexNet(2), AlexNet(5) metrics
``inception-v3``   torchvision Inception-v3 (IMAGENET1K_V1)  Inception metric
``efficientnet-b1``  torchvision EfficientNet-B1 (IMAGENET1K_V2)  EffNet-B1 distance (optional)
``swav-resnet50``  SwAV ResNet-50 (facebookresearch/swav, 800 ep)  SwAV distance (optional)
=================  ======================================  =============================================
"""

import hashlib
import importlib
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from brainldm.errors import ModelError, check_choice
from brainldm.data.progress import quiet_libraries
from brainldm.settings import models_dir, torch_device, torch_dtype

__all__ = ["ModelSpec", "MODELS", "OPTIONAL", "search", "locate", "how_to_get", "load", "available",
           "default_device_dtype", "torchvision_hash_problem"]


@dataclass(frozen=True)
class ModelSpec:
    """How to find and load one real model.

    Attributes
    ----------
    repo_id : str
        Hugging Face id (``torchvision/<weights file>`` for torchvision weights).
    library : {"diffusers", "transformers", "torchvision"}
    model_class : str
        Pipeline or model class of ``library`` (for torchvision, the builder in
        ``torchvision.models``).
    processor_class : str or None
        transformers processor loaded with the model.
    required : tuple of str
        Files the folder must hold, relative to it (one per pipeline component);
        ``"a|b"`` means either file.
    purpose : str
    load_options : dict
        Extra keyword arguments of ``from_pretrained`` or of the torchvision builder.
    url : str, optional
        Where a torchvision-format weights file is published, if not on download.pytorch.org.
    """

    repo_id: str
    library: str
    model_class: str
    required: tuple
    purpose: str
    processor_class: str = None
    load_options: dict = field(default_factory=dict)
    url: str = None

    @property
    def filename(self):
        """The weights file of a torchvision model."""
        return self.repo_id.split("/", 1)[1]


# processors saved by transformers >= 5 write processor_config.json, older ones preprocessor_config.json
_TRANSFORMERS_FILES = ("config.json", "preprocessor_config.json|processor_config.json")
_SD_COMPONENTS = ("model_index.json", "vae/config.json", "unet/config.json", "text_encoder/config.json",
                  "tokenizer/tokenizer_config.json", "scheduler/scheduler_config.json",
                  # a tokenizer without its vocabulary still loads (and knows no word): require it
                  "tokenizer/vocab.json|tokenizer/tokenizer.json")

#: name -> :class:`ModelSpec` of every real model the book uses
MODELS = {
    "sd-v1-4": ModelSpec(
        "CompVis/stable-diffusion-v1-4", "diffusers", "StableDiffusionImg2ImgPipeline", _SD_COMPONENTS,
        "img2img reconstruction from decoded z and c",
        # the NSFW checker is not part of the method; skipping it also skips loading its weights
        load_options={"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}),
    "sd-2-depth": ModelSpec(
        "stabilityai/stable-diffusion-2-depth", "diffusers", "StableDiffusionDepth2ImgPipeline",
        _SD_COMPONENTS + ("depth_estimator/config.json", "feature_extractor/preprocessor_config.json"),
        "+D: reconstruction conditioned on decoded depth"),
    "blip": ModelSpec(
        "Salesforce/blip-image-captioning-base", "transformers", "BlipForConditionalGeneration",
        _TRANSFORMERS_FILES + ("vocab.txt|tokenizer.json",), "+T: captions", processor_class="BlipProcessor"),
    "dpt-large": ModelSpec(
        "Intel/dpt-large", "transformers", "DPTForDepthEstimation",
        _TRANSFORMERS_FILES, "depth maps of the stimuli",
        processor_class="DPTImageProcessor"),
    "clip-vit-l14": ModelSpec(
        "openai/clip-vit-large-patch14", "transformers", "CLIPModel",
        _TRANSFORMERS_FILES + ("vocab.json|tokenizer.json",), "CLIP features for identification and MindDiffuser",
        processor_class="CLIPProcessor"),
    "alexnet": ModelSpec(
        "torchvision/alexnet-owt-7be5be79.pth", "torchvision", "alexnet", (), "AlexNet(2), AlexNet(5) metrics"),
    "inception-v3": ModelSpec(
        # the ImageNet weights come with the auxiliary classifier and expect transform_input
        "torchvision/inception_v3_google-0cc3c7bd.pth", "torchvision", "inception_v3", (), "Inception metric",
        load_options={"aux_logits": True, "transform_input": True, "init_weights": False}),
    # the two distances Brain-Diffuser and MindEye add to the suite; optional: a missing file skips its column
    "efficientnet-b1": ModelSpec(
        "torchvision/efficientnet_b1-c27df63c.pth", "torchvision", "efficientnet_b1", (), "EffNet-B1 distance"),
    "swav-resnet50": ModelSpec(
        # torch hub's facebookresearch/swav resnet50: a torchvision ResNet-50 trunk, keys prefixed "module."
        "torchvision/swav_800ep_pretrain.pth.tar", "torchvision", "resnet50", (), "SwAV distance",
        url="https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"),
}
#: models the book runs without (their columns are skipped, with the reason, when they are missing)
OPTIONAL = ("efficientnet-b1", "swav-resnet50")

_TORCHVISION_URL = "https://download.pytorch.org/models/"


def _hf_cache_dir():
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _torch_hub_dir():
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _candidates(spec, models):
    """The two places a model may be, as ``(description, path)``."""
    if spec.library == "torchvision":
        return [("model folder", models_dir(models) / "torchvision" / spec.filename),
                ("torch hub cache", _torch_hub_dir() / spec.filename)]
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(spec.repo_id, spec.required[0], cache_dir=_hf_cache_dir())
    snapshot = Path(cached).parent if isinstance(cached, str) else \
        _hf_cache_dir() / f"models--{spec.repo_id.replace('/', '--')}"
    return [("model folder", models_dir(models) / spec.repo_id), ("Hugging Face cache", snapshot)]


def _missing(spec, path):
    """The required files ``path`` lacks (empty if it holds the complete model)."""
    return [item.replace("|", " or ") for item in spec.required
            if not any((path / alternative).exists() for alternative in item.split("|"))]


def how_to_get(name, models=None):
    """How to put model ``name`` where :func:`locate` looks, from a machine with network."""
    spec = MODELS[check_choice("model", name, MODELS)]
    target = _candidates(spec, models)[0][1]
    if spec.library == "torchvision":
        url = spec.url or _TORCHVISION_URL + spec.filename
        return (f"on a machine with network, download {url} and copy it here as "
                f"{target} (or into torch hub's checkpoints folder)")
    return (f"on a machine with network, run `hf download {spec.repo_id} --local-dir {spec.repo_id}` and copy "
            f"that folder here to {target} (or set BRAINLDM_MODELS to a folder that holds {spec.repo_id}/)")


def search(name, models=None):
    """Look for model ``name`` in both places, without raising.

    Returns
    -------
    path : pathlib.Path or None
        Where the complete model is, if anywhere.
    looked : list of str
        One line per place looked in before it was found: the path and what it lacks.
    """
    spec = MODELS[check_choice("model", name, MODELS)]
    looked = []
    for where, path in _candidates(spec, models):
        if not path.exists():
            looked.append(f"{where} {path}: not there")
            continue
        missing = _missing(spec, path)
        if not missing:
            return path, looked
        looked.append(f"{where} {path}: incomplete, missing {', '.join(missing)}")
    return None, looked


def locate(name, models=None):
    """Where the weights of model ``name`` are.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    models : path, optional
        Model folder; else ``BRAINLDM_MODELS``, else ``~/brainldm_data/models``.

    Returns
    -------
    path : pathlib.Path
        The model's folder (diffusers, transformers) or weights file (torchvision).

    Raises
    ------
    ModelError
        If neither place holds the complete model; the message says where it looked,
        what is missing and how to provide it.
    """
    path, looked = search(name, models)
    if path is None:
        spec = MODELS[name]
        raise ModelError(
            f"model {name!r} ({spec.repo_id}, {spec.purpose}) was not found. Looked in: " + "; ".join(looked)
            + f". To provide it: {how_to_get(name, models)}. Nothing is downloaded by brainldm.")
    return path


def available(models=None):
    """Every model of :data:`MODELS` and its path, or None if it is missing.

    Returns
    -------
    found : dict of str to pathlib.Path or None
    """
    return {name: search(name, models)[0] for name in MODELS}


def default_device_dtype(device=None, dtype=None):
    """The device and dtype to load models with (:func:`brainldm.settings.torch_device` and ``torch_dtype``).

    Argument, then ``BRAINLDM_DEVICE`` / ``BRAINLDM_DTYPE``, then cuda in float16 if a GPU
    is visible, else cpu in float32.

    Returns
    -------
    device : torch.device
    dtype : torch.dtype
    """
    device = torch_device(device)
    return device, torch_dtype(dtype, device)


def load(name, device=None, dtype=None, models=None):
    """Load model ``name`` from local files only.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    device, dtype : optional
        See :func:`default_device_dtype`; the weights are loaded directly in ``dtype``.
    models : path, optional
        Model folder (see :func:`locate`).

    Returns
    -------
    model
        diffusers: the pipeline. transformers: a tuple ``(model, processor)``.
        torchvision: the module. Models are in eval mode, frozen (``requires_grad`` False), on
        ``device`` in ``dtype``.
    """
    import torch
    from safetensors import SafetensorError

    spec = MODELS[check_choice("model", name, MODELS)]
    quiet_libraries()  # no "Loading weights" bars or tqdm warnings on chapter pages
    path = locate(name, models)
    device, dtype = default_device_dtype(device, dtype)
    try:
        if spec.library == "torchvision":
            return _load_torchvision(spec, path).to(device=device, dtype=dtype).eval().requires_grad_(False)
        library = importlib.import_module(spec.library)
        if spec.library == "diffusers":
            # weights are read straight into `dtype` (accelerate's low-memory loading), then moved once
            pipeline = getattr(library, spec.model_class).from_pretrained(
                path, dtype=dtype, local_files_only=True, **spec.load_options)
            for component in pipeline.components.values():
                if isinstance(component, torch.nn.Module):
                    component.eval().requires_grad_(False)
            return pipeline.to(device)
        model = getattr(library, spec.model_class).from_pretrained(path, dtype=dtype, local_files_only=True)
        processor = getattr(library, spec.processor_class).from_pretrained(path, local_files_only=True)
        return model.to(device).eval().requires_grad_(False), processor
    except (OSError, ValueError, RuntimeError, KeyError, EOFError, SafetensorError, pickle.UnpicklingError) as error:
        raise ModelError(
            f"found model {name!r} at {path} but could not load it as {spec.library}.{spec.model_class}: "
            f"{type(error).__name__}: {error}. The copy may be incomplete; {how_to_get(name, models)}.") from error


def _load_torchvision(spec, path):
    import torch
    import torchvision

    model = getattr(torchvision.models, spec.model_class)(weights=None, **spec.load_options)
    state = {key.removeprefix("module."): value
             for key, value in torch.load(path, map_location="cpu", weights_only=True).items()}
    own = model.state_dict()
    # a self-supervised checkpoint (SwAV) has a projection head instead of the classifier, which no metric reads
    head = {key for key in own if key.startswith("fc.")} if spec.repo_id.endswith(".pth.tar") else set()
    missing = set(own) - set(state) - head
    if missing:
        raise KeyError(f"the weights file lacks {len(missing)} of the model's tensors, e.g. {sorted(missing)[:3]}")
    model.load_state_dict({key: value for key, value in state.items() if key in own}, strict=not head)
    problem = torchvision_hash_problem(spec, path)  # torch's zip reader checks no CRC: the name's sha256 prefix does
    if problem:
        warnings.warn(f"{path}: {problem}", UserWarning, stacklevel=3)
    return model


def torchvision_hash_problem(spec, path):
    """What is wrong with the torchvision weights file ``path`` of ``spec``, or None.

    torchvision names its weights ``<name>-<first hex digits of their sha256>.pth``: a file whose
    sha256 does not start so is damaged, or holds other weights under that name. Files named
    otherwise (and a ``path`` of None) are not checked.
    """
    match = re.search(r"-([0-9a-f]{8,})\.pth$", spec.filename)
    if path is None or match is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(match.group(1)):
        return (f"its sha256 starts {digest.hexdigest()[:len(match.group(1))]}, not {match.group(1)} as the file name "
                "says: these are not the published weights (damaged, or other weights under that name)")
    return None
