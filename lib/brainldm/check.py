"""``brainldm check``: which datasets and models this machine has, and whether a GPU is visible.

Only looks at files; never loads weights or betas, and never touches the network.
"""

import os

from . import zoo
from .datasets.nsd import NSD_SUBJECTS, STANDARD_VOLUMES, NSDLayout
from .settings import models_dir, nsd_root

__all__ = ["report", "gpu_lines", "nsd_lines", "model_lines"]


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


def model_lines(models=None):
    """One line per model of :data:`brainldm.zoo.MODELS`: where it was found, or where it was looked for."""
    lines = [f"Models (folder {models_dir(models)}, {_source('BRAINLDM_MODELS')}; "
             "then the Hugging Face and torch hub caches)"]
    width = max(map(len, zoo.MODELS))
    for name, spec in zoo.MODELS.items():
        path, looked = zoo.search(name, models)
        if path is not None:
            lines.append(f"  {name:<{width}}  {spec.repo_id}: found {path}")
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
