"""Tables and sample sets for the world models' card (chapter 90)."""

import pandas as pd
import torch

from brainldm.models.ldm import LatentDiffusion, images_to_tensor

__all__ = ["TARGETS", "training_table", "quality_table", "strength_series", "captions_and_depth"]

# Quality the world models must reach on held-out images (issue 4), with the key in the card.
TARGETS = [
    ("VAE reconstruction PSNR (dB)", ("vae_psnr",), 25.0, None),
    ("text→image: CNN sees the main category", ("text2img_category",), 0.70,
     ("text2img_chance", "category")),
    ("text→image: CNN sees the main colour", ("text2img_color",), 0.70, ("text2img_chance", "color")),
    ("img2img (strength 0.8): two-way identification, CNN late",
     ("img2img_identification", "cnn_late"), 0.95, None),
    ("image encoder: top-1 caption retrieval", ("retrieval_top1",), 0.50, ("retrieval_chance",)),
    ("CNN attribute accuracy (mean)", ("cnn_accuracy", "mean"), 0.95, None),
    ("captioner attribute accuracy (mean)", ("captioner_accuracy", "mean"), 0.85, None),
    ("depth estimator Pearson r", ("depth_r",), 0.90, None),
]


def _get(quality, keys):
    for key in keys:
        quality = quality[key]
    return quality


def training_table(card):
    """One row per trained model: parameters, size, steps, batch, time, first and last loss.

    Parameters
    ----------
    card : dict
        :func:`brainldm.models.world.model_card`.

    Returns
    -------
    table : pandas.DataFrame
    """
    rows = [{"model": name, "parameters (M)": m["params"] / 1e6, "size (MB)": m["megabytes"],
             "steps": m["steps"], "batch": m["batch_size"], "minutes": m["seconds"] / 60,
             "first loss": m["loss_first"], "last loss": m["loss_last"]}
            for name, m in card["models"].items()]
    return pd.DataFrame(rows).set_index("model").round(3)


def quality_table(**runs):
    """The quality numbers of one or more runs beside their targets and chance levels.

    Parameters
    ----------
    **runs : dict
        Run name → quality dict of :func:`~brainldm.training.metrics.evaluate_world_models`.

    Returns
    -------
    table : pandas.DataFrame
        One row per target; a column per run, ``target``, ``chance`` and whether the
        first run ``meets`` the target.
    """
    rows = []
    for label, keys, target, chance in TARGETS:
        row = {"metric": label}
        for name, quality in runs.items():
            row[name] = _get(quality, keys)
        first = next(iter(runs.values()))
        row["target"] = target
        row["chance"] = _get(first, chance) if chance else (0.5 if "identification" in label else None)
        row["meets"] = bool(_get(first, keys) >= target)
        rows.append(row)
    return pd.DataFrame(rows).set_index("metric").round(3)


def strength_series(models, images, captions, strengths, seed=0, num_inference_steps=50,
                    guidance_scale=5.0):
    """img2img of ``images`` from their own ``z`` and ``c`` at several strengths.

    Parameters
    ----------
    models : brainldm.models.world.WorldModels
    images : uint8 array of shape (n, H, W, 3)
    captions : list of n lists of str
    strengths : list of float in (0, 1]
    seed : int
        The same noise seed for every strength.

    Returns
    -------
    series : dict of float to uint8 array (n, H, W, 3)
    """
    ldm = LatentDiffusion(models.vae, models.unet, models.scheduler)
    z, c = ldm.encode(images), models.text_encoder.encode_captions(captions)
    return {s: ldm.decode(ldm.img2img(z, c, strength=s, guidance_scale=guidance_scale,
                                      num_inference_steps=num_inference_steps,
                                      generator=torch.Generator().manual_seed(seed),
                                      uncond=models.uncond))
            for s in strengths}


@torch.no_grad()
def captions_and_depth(models, images):
    """The captioner's captions and the depth estimator's maps of uint8 images (n, H, W, 3).

    Returns
    -------
    captions : list of n str
    depth : float32 array of shape (n, H, W)
    """
    pixels = images_to_tensor(images)
    return (models.captioner.generate(models.image_encoder, pixels),
            models.depth_estimator(pixels).numpy())
