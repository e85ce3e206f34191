"""Quality of the world models on held-out world images.

Held-out images are ids ``HELD_OUT_BASE + 0 …``: neither in the models' training
pool nor seen by any simulated subject.
"""

import json

import numpy as np
import pandas as pd
import torch

from brainldm.data.cache import cached_arrays
from brainldm.data.datasets.world.scenes import CATEGORIES, COLOR_NAMES, render_scenes
from brainldm.evaluate.metrics import psnr, two_way_identification
from brainldm.features.depth import depth_correlation
from brainldm.models.ldm import LatentDiffusion, SamplerSettings, images_to_tensor
from brainldm.models.loading import weights_digest
from brainldm.models.world.nets import INCEPTION_ATTRIBUTES, LAYERS, scene_attributes

__all__ = ["cached_evaluation", "HELD_OUT_BASE", "held_out_ids", "top1_retrieval", "accuracy_per_attribute",
           "predict_attributes", "inception_accuracy", "layer_features", "evaluate_world_models",
           "strength_identification"]

HELD_OUT_BASE = 200_000_000


def held_out_ids(n):
    """Ids of ``n`` held-out world images: int array of shape (n,)."""
    return HELD_OUT_BASE + np.arange(n)


def top1_retrieval(image_embeddings, text_embeddings):
    """Fraction of images whose own caption is the most similar of all captions.

    Parameters
    ----------
    image_embeddings, text_embeddings : arrays of shape (n, d)
        Row i of each belongs to image i. Similarity is the cosine.

    Returns
    -------
    accuracy : float
        Chance is 1 / n.
    """
    a = np.asarray(image_embeddings, np.float64)
    b = np.asarray(text_embeddings, np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.mean((a @ b.T).argmax(axis=1) == np.arange(len(a))))


def accuracy_per_attribute(predicted, true):
    """Accuracy of each predicted attribute and their mean.

    Parameters
    ----------
    predicted, true : dict of str to int array of shape (n,)
        Compared on the keys of ``predicted``.

    Returns
    -------
    accuracy : dict of str to float
        One entry per attribute, and ``mean``.
    """
    acc = {k: float(np.mean(np.asarray(v) == np.asarray(true[k]))) for k, v in predicted.items()}
    acc["mean"] = float(np.mean(list(acc.values())))
    return acc


@torch.no_grad()
def predict_attributes(cnn, images):
    """The world CNN's attributes of uint8 images (n, H, W, 3): dict of str to int array (n,)."""
    logits = cnn(images_to_tensor(images))
    return {k: v.argmax(1).numpy() for k, v in logits.items()}


def inception_accuracy(inception, images, true):
    """The Inception analogue's accuracy on what it learned (the place and the main object's category).

    Parameters
    ----------
    inception : brainldm.models.world.nets.WorldInception
    images : uint8 array (n, H, W, 3)
    true : dict of str to int array (n,)
        :func:`~brainldm.models.world.nets.scene_attributes` of the images.

    Returns
    -------
    accuracy : dict of str to float
        ``place``, ``category`` and their ``mean``.
    """
    predicted = predict_attributes(inception, images)
    return accuracy_per_attribute({k: predicted[k] for k in INCEPTION_ATTRIBUTES}, true)


@torch.no_grad()
def layer_features(model, images):
    """Flattened early, middle and late activations: dict of str to array (n, features)."""
    layers = model.forward_layers(images_to_tensor(images))
    return {k: layers[k].flatten(1).numpy() for k in LAYERS}


def evaluate_world_models(models, n_eval=100, seed=0, settings=None, return_images=False):
    """Every quality number of the world models on ``n_eval`` held-out images.

    Parameters
    ----------
    models : brainldm.models.world.WorldModels
    n_eval : int
        Held-out images (at least 2).
    seed : int
        World seed of the held-out images.
    settings : SamplerSettings, optional
        Strength, guidance and steps of the samples (default Takagi's: 0.8, 5.0, 50); its
        ``seed`` seeds the text→image, img2img and depth samples (``seed``, ``+ 1``, ``+ 2``).
    return_images : bool
        Also return the images that were generated.

    Returns
    -------
    quality : dict
        ``vae_psnr``; ``cnn_accuracy`` (per attribute and mean); ``inception_accuracy`` (place,
        category and mean; when ``models`` has the Inception analogue); ``text2img_category`` and
        ``text2img_color`` (the CNN's accuracy on text→image samples) with their chance
        levels; ``img2img_identification`` (per CNN, image-encoder and Inception layer) and
        ``vae_identification`` (the same of the VAE round trip, img2img's ceiling);
        ``vae_cnn_accuracy`` (the CNN's attribute accuracy on the VAE round trip);
        ``retrieval_top1`` with chance; ``captioner_accuracy``; ``depth_r``; ``depth2img_r``
        (depth of depth-conditioned samples vs the conditioning depth).
    images : dict of str to uint8 array (n, H, W, 3)
        Only if ``return_images``: ``original``, ``vae``, ``text2img``, ``img2img``, ``depth2img``.
    """
    scenes = render_scenes(held_out_ids(n_eval), seed=seed)
    true = scene_attributes(scenes)
    pixels = images_to_tensor(scenes.images)
    ldm = LatentDiffusion(models.vae, models.unet, models.scheduler)
    c, sentences = models.text_encoder.encode_images(scenes.captions)
    settings = settings or SamplerSettings(seed=seed)
    quality, images = {"n_eval": n_eval, "num_inference_steps": settings.num_inference_steps,
                       "guidance_scale": settings.guidance_scale, "strength": settings.strength}, {}
    images["original"] = scenes.images
    # VAE: reconstruction through z.
    z = ldm.encode(scenes.images)
    images["vae"] = ldm.decode(z)
    quality["vae_psnr"] = float(np.mean(psnr(images["vae"], scenes.images)))
    # CNN: attributes of the real images, and of their VAE round trip (what survives z).
    predicted = predict_attributes(models.cnn, scenes.images)
    quality["cnn_accuracy"] = accuracy_per_attribute(predicted, true)
    quality["vae_cnn_accuracy"] = accuracy_per_attribute(predict_attributes(models.cnn, images["vae"]), true)
    inception = getattr(models, "inception", None)
    if inception is not None:
        quality["inception_accuracy"] = inception_accuracy(inception, scenes.images, true)
    # Text → image from held-out captions; does the CNN see the main object's category and colour?
    gen = torch.Generator().manual_seed(settings.seed)
    images["text2img"] = ldm.decode(ldm.text2img(c, settings, generator=gen, uncond=models.uncond))
    seen = predict_attributes(models.cnn, images["text2img"])
    quality["text2img_category"] = float(np.mean(seen["category"] == true["category"]))
    quality["text2img_color"] = float(np.mean(seen["color"] == true["color"]))
    quality["text2img_chance"] = {"category": 1 / len(CATEGORIES), "color": 1 / len(COLOR_NAMES)}
    # img2img from the image's own z and c: two-way identification, beside the VAE round trip's
    # (img2img starts from z, so what the VAE loses is its ceiling).
    gen = torch.Generator().manual_seed(settings.seed + 1)
    images["img2img"] = ldm.decode(ldm.img2img(z, c, settings, generator=gen, uncond=models.uncond))
    nets = [("cnn", models.cnn), ("image_encoder", models.image_encoder)]
    nets += [("inception", inception)] if inception is not None else []
    quality["img2img_identification"], quality["vae_identification"] = {}, {}
    for name, net in nets:
        orig = layer_features(net, scenes.images)
        for kind in ("img2img", "vae"):
            new = layer_features(net, images[kind])
            for layer in LAYERS:
                quality[f"{kind}_identification"][f"{name}_{layer}"] = float(
                    np.mean(two_way_identification(orig[layer], new[layer])))
    # Image encoder: which of the n captions (each image's first) is its own?
    with torch.no_grad():
        embeddings = models.image_encoder(pixels).numpy()
    quality["retrieval_top1"] = top1_retrieval(embeddings, sentences[:, 0].numpy())
    quality["retrieval_chance"] = 1 / n_eval
    # Captioner: attributes of the main object and the place, as the caption states them.
    with torch.no_grad():
        said = models.captioner.predict_attributes(pixels)
    said_main = {k: said[k] for k in ("place", "size", "position")}
    said_main.update(category=said["category"][:, 0], color=said["color"][:, 0])
    quality["captioner_accuracy"] = accuracy_per_attribute(said_main, true)
    # Depth estimator, and depth-conditioned generation (+D) judged by it (Pearson r per image).
    with torch.no_grad():
        depth = models.depth_estimator(pixels).numpy()
    quality["depth_r"] = float(np.mean(depth_correlation(depth, scenes.depth)))
    if ldm.takes_depth:
        gen = torch.Generator().manual_seed(settings.seed + 2)
        images["depth2img"] = ldm.decode(ldm.text2img(c, settings, generator=gen, uncond=models.uncond,
                                                      depth=scenes.depth))
        with torch.no_grad():
            made = models.depth_estimator(images_to_tensor(images["depth2img"])).numpy()
        quality["depth2img_r"] = float(np.mean(depth_correlation(made, scenes.depth)))
    quality = _rounded(quality)
    return (quality, images) if return_images else quality


def cached_evaluation(models, n_eval=100, seed=0, settings=None):
    """:func:`evaluate_world_models` with its images, computed once per set of weights and settings.

    The key is a digest of every network's parameters (:func:`brainldm.models.loading.weights_digest`),
    so retrained weights are evaluated again and a warm build reads the result from the cache.

    Parameters
    ----------
    models : brainldm.models.world.WorldModels
    n_eval, seed, settings
        See :func:`evaluate_world_models`.

    Returns
    -------
    quality : dict
    images : dict of str to uint8 array (n, H, W, 3)
    """
    nets = [models.vae, models.unet, models.scheduler, models.cnn, models.image_encoder, models.captioner,
            models.depth_estimator]
    if getattr(models, "inception", None) is not None:
        nets.append(models.inception)
    settings = settings or SamplerSettings(seed=seed)
    sampling = {k: v for k, v in settings.as_dict().items() if k not in ("n_samples", "batch_size", "size")}
    params = {"weights": weights_digest(*nets), "n_eval": n_eval, "world_seed": seed, **sampling}

    def compute():
        quality, images = evaluate_world_models(models, n_eval=n_eval, seed=seed, settings=settings,
                                                return_images=True)
        return {"quality": np.array(json.dumps(quality)), **{f"image_{k}": v for k, v in images.items()}}

    arrays = cached_arrays("world_model_quality", params, "3", compute)  # 2: inception_accuracy; 3: the VAE round trip's
    images = {k[len("image_"):]: np.asarray(v) for k, v in arrays.items() if k.startswith("image_")}
    return json.loads(str(arrays["quality"])), images


def strength_identification(models, strengths, n_eval=100, seed=0, settings=None):
    """What img2img keeps of each held-out image at several strengths, beside the VAE round trip (cached).

    img2img starts from the image's own ``z`` and ``c`` (``settings``' guidance and steps, the noise
    of :func:`evaluate_world_models`' img2img, so its row at the card's strength is the card's).

    Parameters
    ----------
    models : brainldm.models.world.WorldModels
    strengths : list of float in (0, 1]
    n_eval, seed, settings
        See :func:`evaluate_world_models`.

    Returns
    -------
    table : pandas DataFrame
        One row per strength after the ``"VAE round trip"`` row (img2img's ceiling): two-way
        identification in the CNN's and the image encoder's late layers, and the CNN's accuracy
        on the main object's position, category and colour.
    """
    settings = settings or SamplerSettings(seed=seed)
    sampling = {k: v for k, v in settings.as_dict().items() if k not in ("n_samples", "batch_size", "size", "strength")}
    digest = weights_digest(models.vae, models.unet, models.scheduler, models.cnn, models.image_encoder)
    params = {"weights": digest, "n_eval": n_eval, "world_seed": seed,
              "strengths": [float(s) for s in strengths], **sampling}

    def compute():
        scenes = render_scenes(held_out_ids(n_eval), seed=seed)
        true = scene_attributes(scenes)
        ldm = LatentDiffusion(models.vae, models.unet, models.scheduler)
        z, (c, _) = ldm.encode(scenes.images), models.text_encoder.encode_images(scenes.captions)
        made = {"VAE round trip": ldm.decode(z)}
        for s in strengths:
            gen = torch.Generator().manual_seed(settings.seed + 1)
            made[f"img2img {s}"] = ldm.decode(ldm.img2img(z, c, settings.replace(strength=s), generator=gen,
                                                          uncond=models.uncond))
        nets = {"CNN": models.cnn, "image encoder": models.image_encoder}
        orig = {name: layer_features(net, scenes.images)["late"] for name, net in nets.items()}
        rows = {}
        for label, images in made.items():
            seen = predict_attributes(models.cnn, images)
            rows[label] = {f"{name} late": float(np.mean(two_way_identification(orig[name],
                                                                                layer_features(net, images)["late"])))
                           for name, net in nets.items()}
            rows[label].update({f"CNN: {key}": float(np.mean(seen[key] == true[key]))
                                for key in ("position", "category", "color")})
        return {"table": np.array(json.dumps(rows))}

    rows = json.loads(str(cached_arrays("world_strength_identification", params, "1", compute)["table"]))
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("images")


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) else value

