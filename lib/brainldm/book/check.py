"""``brainldm check``: which datasets and models this machine has, and whether a GPU is visible.

Never reads betas and never touches the network. Each model that is found is loaded on the
CPU and runs one caption and one image through each of its components
(:func:`verify_model`), so that a folder with every file but a broken one (a tokenizer
without its vocabulary, truncated weights) is reported with the component that fails.
"""

import os

from brainldm.errors import BrainLDMError
from brainldm.models import zoo
from brainldm.data.datasets.nsd import NSD_SUBJECTS, STANDARD_VOLUMES, NSDLayout
from brainldm.settings import models_dir, nsd_root

__all__ = ["report", "gpu_lines", "nsd_lines", "model_lines", "verify_model"]

#: the caption and image size every model is checked with
CHECK_CAPTION = "a photo of a cat sitting on a wooden table"
CHECK_IMAGE_SIZE = 64


def _source(variable):
    return f"from {variable}" if os.environ.get(variable) else f"default; set {variable} to change"


def gpu_lines():
    """One line on the GPU: its name, or that models will run on the CPU in float32."""
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return [f"GPU: {names} (models load in float16 on cuda)"]
    return [f"GPU: none visible (torch {torch.__version__}); models load on the CPU in float32, "
            "which is fine for world runs and very slow for Stable Diffusion on NSD"]


def _session_summary(layout, subject):
    sessions = layout.sessions(subject)
    if not sessions:
        return f"{subject}: no betas in {layout.betas_dir(subject)}"
    formats = [fmt for fmt in ("hdf5", "nii") if any(layout.betas(subject, s, fmt).exists() for s in sessions)]
    gaps = sorted(set(range(1, max(sessions) + 1)) - set(sessions))
    line = f"{subject}: {len(sessions)} sessions ({', '.join(formats)})"
    if gaps:
        line += f", sessions missing: {gaps} (only sessions before the first gap can be read)"
    rois = [name for name in STANDARD_VOLUMES if layout.roi(subject, name).exists()]
    missing = [name for name in STANDARD_VOLUMES if name not in rois]
    if missing:
        line += f"; ROI volume(s) missing: {', '.join(missing)} (expected in {layout.roi(subject, '').parent})"
    return line


def nsd_lines(root=None):
    """Lines describing the NSD root: found or not, its shared files, and each subject's sessions."""
    root = nsd_root(root)
    header = f"nsd    root {root} ({_source('BRAINLDM_NSD_ROOT')})"
    if not root.is_dir():
        return [f"{header}: missing (see README, 'Running on NSD')"]
    layout = NSDLayout(root)
    lines = [f"{header}: found"]
    for what, path in (("experiment design", layout.expdesign), ("stimulus info", layout.stim_info),
                       ("stimuli", layout.stimuli),
                       ("COCO captions", layout.annotations / "captions_train2017.json"),
                       ("COCO captions", layout.annotations / "captions_val2017.json")):
        lines.append(f"       {what}: {'ok' if path.exists() else 'missing'} {path}")
    subjects = [s for s in NSD_SUBJECTS if layout.sessions(s) or layout.roi(s, "streams").parent.exists()]
    if not subjects:
        lines.append(f"       no subject has betas under {root / 'nsddata_betas/ppdata'}")
    lines += [f"       {_session_summary(layout, s)}" for s in subjects]
    return lines


def _tokenizer_problem(tokenizer):
    """What is wrong with ``tokenizer`` on :data:`CHECK_CAPTION`, or None."""
    ids = tokenizer(CHECK_CAPTION)["input_ids"]
    special = set(getattr(tokenizer, "all_special_ids", []))
    words = [i for i in ids if i not in special or i == tokenizer.unk_token_id]
    if not words:
        return "turns a caption into no tokens (no vocabulary?)"
    if tokenizer.unk_token_id is not None and all(i == tokenizer.unk_token_id for i in words):
        return "knows no word of a plain English caption: its vocabulary is missing or wrong"
    return None


def _finite(name, tensor):
    import torch

    if not torch.isfinite(tensor.float()).all():
        raise ValueError(f"{name} returned NaN or infinite values")


def _verify_parts(spec, model):
    """Run one caption and one image through every component of a loaded model; yield (component, problem)."""
    import numpy as np
    import torch
    from PIL import Image

    size = CHECK_IMAGE_SIZE
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
    pixels = torch.rand(1, 3, size, size) * 2 - 1
    steps = []
    if spec.library == "torchvision":
        steps.append(("network", lambda: _finite("the network", model(torch.rand(1, 3, 299, 299)))))
    elif spec.library == "diffusers":
        state = {}
        steps.append(("tokenizer", lambda: _tokenizer_problem(model.tokenizer)))

        def text():
            ids = model.tokenizer(CHECK_CAPTION, padding="max_length", truncation=True, return_tensors="pt")
            state["c"] = model.text_encoder(ids.input_ids)[0]
            _finite("the text encoder", state["c"])

        def vae():
            state["z"] = model.vae.encode(pixels.to(model.vae.dtype)).latent_dist.mean
            _finite("the VAE encoder", state["z"])
            _finite("the VAE decoder", model.vae.decode(state["z"]).sample)

        def unet():
            z = state["z"]
            extra = model.unet.config.in_channels - z.shape[1]
            if extra > 0:  # depth2img: the depth map is concatenated to the latent
                z = torch.cat([z, torch.zeros(z.shape[0], extra, *z.shape[2:], dtype=z.dtype)], 1)
            _finite("the U-Net", model.unet(z, torch.tensor([1]), encoder_hidden_states=state["c"]).sample)

        steps += [("text_encoder", text), ("vae", vae), ("unet", unet)]
        if getattr(model, "depth_estimator", None) is not None:
            def depth():
                inputs = model.feature_extractor(images=image, return_tensors="pt")
                _finite("the depth estimator", model.depth_estimator(**inputs).predicted_depth)

            steps.append(("depth_estimator", depth))
    else:
        network, processor = model
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is not None:
            steps.append(("tokenizer", lambda: _tokenizer_problem(tokenizer)))

        def forward():
            if tokenizer is not None:
                inputs = processor(images=image, text=CHECK_CAPTION, return_tensors="pt", padding=True,
                                   truncation=True)
            else:
                inputs = processor(images=image, return_tensors="pt")
            out = network(**inputs)
            _finite("the model", next(v for v in out.values() if isinstance(v, torch.Tensor)))

        steps.append(("processor and model", forward))
    for component, step in steps:
        try:
            with torch.no_grad():
                problem = step()
        except Exception as error:  # noqa: BLE001 - any failure of a component is what the check reports
            problem = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
        if problem:
            yield component, problem


def verify_model(name, models=None):
    """Load model ``name`` on the CPU and run one caption and one image through each component.

    Returns
    -------
    problems : list of str
        ``"<component>: <what is wrong>"``; empty when every component works.
    """
    import torch

    spec = zoo.MODELS[name]
    problems = []
    if spec.library == "torchvision":
        problem = zoo.torchvision_hash_problem(spec, zoo.search(name, models)[0])
        if problem:
            problems.append(f"weights file: {problem}")
    try:
        model = zoo.load(name, device="cpu", dtype=torch.float32, models=models)
    except BrainLDMError as error:
        return [f"loading: {' '.join(str(error).split())[:400]}"]
    except Exception as error:  # noqa: BLE001
        return [f"loading: {type(error).__name__}: {' '.join(str(error).split())[:300]}"]
    return problems + [f"{component}: {problem}" for component, problem in _verify_parts(spec, model)]


def model_lines(models=None, verify=True):
    """One line per model of :data:`brainldm.models.zoo.MODELS`: where it was found, or where it was looked for.

    With ``verify``, each model found is also loaded and run once (:func:`verify_model`); a
    model that fails gets a line per failing component.
    """
    lines = [f"Models (folder {models_dir(models)}, {_source('BRAINLDM_MODELS')}; "
             "then the Hugging Face and torch hub caches)"]
    width = max(map(len, zoo.MODELS))
    for name, spec in zoo.MODELS.items():
        path, looked = zoo.search(name, models)
        if path is not None:
            problems = verify_model(name, models) if verify else []
            lines.append(f"  {name:<{width}}  {spec.repo_id}: found {path}"
                         + (f" but BROKEN ({len(problems)} component(s) fail)" if problems else
                            (", loads and runs" if verify else "")))
            lines += [f"  {'':<{width}}  {problem}" for problem in problems]
        else:
            state = "missing, optional: its column is skipped" if name in zoo.OPTIONAL else "MISSING"
            lines.append(f"  {name:<{width}}  {spec.repo_id}: {state} ({spec.purpose}); looked in "
                         + "; ".join(looked))
            lines.append(f"  {'':<{width}}  to get it: {zoo.how_to_get(name, models)}")
    return lines


def report(root=None, models=None):
    """The text ``brainldm check`` prints.

    Parameters
    ----------
    root : path, optional
        NSD root (default: :func:`brainldm.settings.nsd_root`).
    models : path, optional
        Model folder (default: :func:`brainldm.settings.models_dir`).

    Returns
    -------
    text : str
    """
    lines = gpu_lines() + ["", "Datasets", "  world  always available (generated from a seed; nothing to download)"]
    lines += [f"  {line}" for line in nsd_lines(root)]
    lines += [""] + model_lines(models) + ["", "Missing NSD files or models only matter for runs with dataset=nsd."]
    return "\n".join(lines)
