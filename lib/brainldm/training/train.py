"""Train the world models on the world models' training pool: ``brainldm train-world``.

One seeded command reproduces the shipped weights. The models that do not depend
on each other are trained one after another in one process; the U-Net needs the
VAE (its ``z``) and the text encoder (its ``c``); the captioner's encoder starts as the CNN's.
Each model is saved as soon as it is trained, with its steps, wall time and
losses in ``model_card.json`` beside the weights; the quality numbers on held-out
images are added at the end (:func:`brainldm.training.metrics.evaluate_world_models`).

Run it in the background, e.g.::

    nohup brainldm train-world --threads 1 > train_world.log 2>&1 &

Each model's recipe (:data:`STEPS`) is a list of stages; a stage restarts the
optimiser and its learning-rate schedule (a :class:`Schedule`) from the previous stage's
weights, with the same seeds, so one command replays every stage the shipped weights went
through. ``--resume`` loads the models already in ``--out`` and runs only the
stages their card does not list yet (after a recipe gains a stage, it trains
just that stage).
"""

import copy
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from diffusers.optimization import get_cosine_schedule_with_warmup

from brainldm.data.cache import atomic_write, cached_arrays
from brainldm.data.datasets.world.design import POOL_BASE, is_leaked, zoo_pool_ids
from brainldm.data.datasets.world.scenes import CATEGORIES, COLOR_NAMES, MAX_OBJECTS, render_scenes
from brainldm.models.ldm import images_to_tensor, prepare_depth, shifted_scheduler
from brainldm.data.progress import progress_bar
from brainldm.errors import BrainLDMError, CommandParser, ParameterError
from brainldm.models.world import load_world_model, load_world_models, weights_dir
from brainldm.models.world.nets import ATTRIBUTES, INCEPTION_ATTRIBUTES, TextEncoder, build, scene_attributes
from brainldm.training.metrics import evaluate_world_models

__all__ = ["STEPS", "Schedule", "train_world_main", "load_pool", "train_vae", "vae_scaling_factor", "encode_latents",
           "UNetOptions", "deepen_attention", "train_unet", "train_cnn", "train_inception", "render_pool", "train_image_encoder",
           "captioner_targets", "train_captioner", "train_depth_estimator", "update_model_card"]

log = logging.getLogger("brainldm.train_world")

# Each model's recipe: stages of (steps, batch size, learning rate, fresh pool images[, options]).
# A stage's pool of None is the shared pool (--n-images, with the leaked test images);
# fresh images are rendered without captions (:func:`render_pool`): the CNN's third stage sees
# 30,000 so that it stops over-fitting the shared pool, its fourth 60,000. The Inception analogue
# learns the place and the category from the same 30,000 (flipped at random), and so does the VAE
# decoder's second stage (its third, 60,000); the captioner's stages read 30,000, then 100,000.
# About nine hours in all, on one CPU thread (the card records each stage's time; the U-Net's
# sixth to ninth stages ran on two threads, 42, 32, 89 and 47 minutes).
STEPS = {
    # a stage after the first trains only the decoder (the U-Net's latents stay): held-out PSNR
    # 26.3 dB after the first stage, 28.6 dB after the second, 29.7 dB after the third (fresh images)
    "vae": [(800, 16, 2e-3, None), (3000, 16, 5e-4, 30000), (3000, 16, 2.5e-4, 60000)],
    # the third stage adapts the U-Net to captions that no longer state positions (issue 18); the
    # fourth weighs the noisy timesteps more (min-SNR) and keeps an EMA of the weights, the fifth
    # continues it at half the rate: held-out text -> image category 0.37 -> 0.73 -> 0.81, colour
    # 0.71 -> 0.77 -> 0.77; img2img CNN-late identification 0.919 -> 0.944 -> 0.942 (card, 100 images).
    # The sixth gives every attention block a second transformer layer (deepen_attention: 1.97 M ->
    # 2.84 M parameters, sampling 29% slower), the seventh continues it at half the rate: on 400
    # held-out images category 0.78 -> 0.82 -> 0.82, colour 0.72 -> 0.75 -> 0.77 (after the fifth, sixth,
    # seventh). The eighth gives every attention block a third layer (2.84 M -> 3.71 M parameters,
    # sampling 33% slower): category 0.845, colour 0.83; img2img CNN-late identification 0.938 -> 0.938.
    # The ninth shifts the noise schedule for the 16 x 16 latents (noise_shift 4 = 64 / 16: SD's schedule
    # is made for 64 x 64) so that img2img at strength 0.8 keeps the layout, as it does in SD: img2img
    # CNN-late identification 0.938 -> 0.978, CNN-middle 0.856 -> 0.988; category 0.845 -> 0.828,
    # colour 0.83 -> 0.80 (400 images; text -> image starts from pure noise, where the shifted
    # schedule still has some signal: SD's low frequencies have the same, Lin et al. 2024)
    "unet": [(2000, 32, 1e-3, None), (1500, 32, 1e-3, None), (1500, 32, 5e-4, None),
             (6000, 64, 5e-4, None, {"snr_gamma": 5.0, "ema_decay": 0.999}),
             (3000, 64, 2.5e-4, None, {"snr_gamma": 5.0, "ema_decay": 0.999}),
             (4000, 64, 5e-4, None, {"snr_gamma": 5.0, "ema_decay": 0.999, "transformer_layers": 2}),
             (3000, 64, 2.5e-4, None, {"snr_gamma": 5.0, "ema_decay": 0.999}),
             (5000, 64, 4e-4, None, {"snr_gamma": 5.0, "ema_decay": 0.999, "transformer_layers": 3}),
             (3000, 64, 2.5e-4, None, {"snr_gamma": 5.0, "ema_decay": 0.999, "noise_shift": 4.0})],
    # the fourth stage: 60,000 fresh images (the CNN fit its 30,000 at 0.99, 500 held-out ones at
    # 0.96); held-out mean accuracy 0.942 -> 0.952 (100 images), 0.967 (1,000)
    "cnn": [(600, 64, 2e-3, None), (600, 64, 2e-3, None), (2000, 64, 1e-3, 30000), (1500, 64, 5e-4, 60000)],
    "image_encoder": [(800, 64, 2e-3, None)],
    # the captioner reads its own encoder, which starts as the CNN's: its first stage trains the heads
    # on the frozen encoder (30,000 fresh images), its second fine-tunes everything (100,000).
    # Held-out accuracy (500 images): 0.940 when it read the frozen image encoder (the CLIP
    # analogue), 0.974 on the CNN's encoder after the first stage
    "captioner": [(3000, 128, 1e-3, 30000), (1500, 64, 2.5e-4, 100000)],
    "depth_estimator": [(400, 16, 3e-3, None)],
    "inception": [(2000, 64, 2e-3, 30000)],
}
ORDER = ("vae", "unet", "cnn", "image_encoder", "captioner", "depth_estimator", "inception")
CARD = "model_card.json"
POOL_VERSION = "2"  # 2: captions without positions
IMAGES_VERSION = "3"  # render_pool's cache; 3: the scenes' per-object arrays (the captioner's targets)
_SCENE_ARRAYS = ("place", "n_objects", "category", "color", "size", "x")


@dataclass(frozen=True)
class Schedule:
    """How one training stage optimises: ``steps`` of AdamW on batches of ``batch_size``, with a cosine schedule.

    Attributes
    ----------
    steps : int
    batch_size : int
    lr : float
        The peak learning rate (after a short linear warm-up).
    generator : torch.Generator
        Draws the batches and every random number of the loss (noise, caption dropout, flips).
    """

    steps: int
    batch_size: int
    lr: float
    generator: torch.Generator


def load_pool(n_images, seed=0, size=64, text_encoder=None):
    """Render the training pool and embed its captions (cached on disk).

    Parameters
    ----------
    n_images : int
        Fresh pool images; the leaked shared-test images are added (``zoo_pool_ids``).
    seed : int
        World seed.
    size : int
        Image size in pixels.
    text_encoder : TextEncoder, optional

    Returns
    -------
    pool : dict of str to ndarray
        ``ids`` (N,), ``images`` uint8 (N, size, size, 3), ``depth`` (N, size, size),
        ``c`` float32 (N, tokens, dim) (captions' mean token embeddings),
        ``sentences`` float32 (N, captions, dim) (unit sentence embeddings), and every
        attribute of :class:`~brainldm.data.datasets.world.scenes.Scenes`.
    """
    text_encoder = text_encoder or TextEncoder()
    ids = zoo_pool_ids(n_images, seed)

    def compute():
        scenes = render_scenes(ids, seed=seed, size=size)
        log.info("rendered %d pool images; embedding their captions", len(ids))
        c, sentences = text_encoder.encode_images(scenes.captions)
        return {"ids": ids, "images": scenes.images, "depth": scenes.depth, "c": c.numpy(),
                "sentences": sentences.numpy(), "place": scenes.place,
                "n_objects": scenes.n_objects, "category": scenes.category, "color": scenes.color,
                "size": scenes.size, "x": scenes.x}

    params = {"n_images": n_images, "seed": seed, "size": size,
              "max_length": text_encoder.max_length, "text_encoder": Path(text_encoder.path).name}
    return cached_arrays("world_zoo_pool", params, POOL_VERSION, compute)


def _batches(n, batch_size, steps, generator):
    """Yield ``steps`` index batches drawn without replacement within each epoch."""
    order, position = torch.randperm(n, generator=generator), 0
    for _ in range(steps):
        if position + batch_size > n:
            order, position = torch.randperm(n, generator=generator), 0
        yield order[position:position + batch_size]
        position += batch_size


def _optimise(model, loss_fn, n, schedule, desc, warmup=50, ema_decay=None):
    """Run AdamW with a cosine schedule (a :class:`Schedule`); ``loss_fn(index)`` returns the batch loss.

    With ``ema_decay``, the model ends with an exponential moving average of its weights over the
    steps (``decay ** step`` weighting, warmed up as ``min(decay, (1 + step) / (10 + step))``), as
    diffusion models are released (the EMA of SD's U-Net), not with the last step's weights.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=1e-4)
    steps = schedule.steps
    learning_rate = get_cosine_schedule_with_warmup(optimiser, min(warmup, steps // 5 + 1), steps)
    average = [p.detach().clone() for p in params] if ema_decay else None
    losses = []
    model.train()
    bar = progress_bar(_batches(n, schedule.batch_size, steps, schedule.generator), total=steps, desc=desc,
                       mininterval=10)
    for step, index in enumerate(bar):
        loss = loss_fn(index)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        learning_rate.step()
        if average is not None:
            torch._foreach_lerp_(average, [p.detach() for p in params], 1 - min(ema_decay, (1 + step) / (10 + step)))
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", refresh=False)
    if average is not None:
        with torch.no_grad():
            torch._foreach_copy_(params, average)
    model.eval()
    return losses


def train_vae(vae, images, schedule, kl_weight=1e-6, decoder_only=False):
    """Train an ``AutoencoderKL`` to reconstruct ``images``.

    Loss: mean squared plus absolute error of the reconstruction from a posterior
    sample, plus ``kl_weight`` times the KL divergence to N(0, 1) (as SD's VAE).

    Parameters
    ----------
    images : tensor (N, 3, H, W) in [-1, 1], or uint8 array (N, H, W, 3)
        Uint8 images are converted batch by batch.
    decoder_only : bool
        Freeze the encoder, so that the latents (and a U-Net trained on them) stay valid, and
        fit only the decoder, without the KL term: how Stable Diffusion's VAE decoder was later
        fine-tuned (``sd-vae-ft-mse``).

    Returns
    -------
    losses : list of float, one per step
    """
    if decoder_only:
        vae.requires_grad_(False)
        vae.decoder.requires_grad_(True)
        vae.post_quant_conv.requires_grad_(True)

    def loss_fn(index):
        x = _batch(images, index)
        with torch.set_grad_enabled(not decoder_only):
            posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=schedule.generator)).sample
        loss = F.mse_loss(recon, x) + F.l1_loss(recon, x)
        return loss if decoder_only else loss + kl_weight * posterior.kl().mean()

    return _optimise(vae, loss_fn, len(images), schedule, "vae")


@torch.no_grad()
def encode_latents(vae, pixels, batch_size=64):
    """Posterior means and standard deviations of ``pixels``: two tensors (N, C, h, w), unscaled."""
    means, stds = [], []
    for i in progress_bar(range(0, len(pixels), batch_size), desc="encode z", mininterval=10):
        dist = vae.encode(pixels[i:i + batch_size]).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def vae_scaling_factor(latent_means):
    """1 / standard deviation of the latents, as SD's 0.18215 was chosen (rounded to 5 digits)."""
    return round(float(1.0 / latent_means.std()), 5)


@dataclass(frozen=True)
class UNetOptions:
    """How :func:`train_unet` treats each batch (a U-Net stage's optional fifth entry in :data:`STEPS`).

    Attributes
    ----------
    p_drop_text : float
        Probability that a sample's ``c`` is replaced by ``uncond`` (classifier-free guidance).
    p_drop_depth : float
        Probability that a sample's depth map is replaced by zeros.
    snr_gamma : float, optional
        Min-SNR loss weighting (Hang et al. 2023): each sample's noise error is weighted by
        ``min(SNR(t), gamma) / SNR(t)``, so the nearly clean timesteps, which fix pixels, weigh less
        than the noisy ones, which fix what and where the objects are. None: the plain MSE.
    ema_decay : float, optional
        End with an exponential moving average of the weights (see :func:`_optimise`).
    transformer_layers : int, optional
        Before training, deepen every attention block of the U-Net to this many transformer layers
        (:func:`deepen_attention`); the U-Net's function is unchanged until the new layers learn.
    noise_shift : float, optional
        The stage trains under, and saves, the world scheduler shifted for its small latents
        (:func:`brainldm.models.ldm.shifted_scheduler` of the unshifted one); later stages keep the
        saved scheduler. Applied by ``brainldm train-world``, not by :func:`train_unet`.
    """

    p_drop_text: float = 0.1
    p_drop_depth: float = 0.5
    snr_gamma: float = None
    ema_decay: float = None
    transformer_layers: int = None
    noise_shift: float = None


# What a stage's optional fifth entry may set (the U-Net's), and what the card records of each stage.
STAGE_OPTIONS = tuple(field.name for field in fields(UNetOptions))
_STAGE_KEYS = ("steps", "batch_size", "learning_rate", "seconds", "pool_images", *STAGE_OPTIONS)


def deepen_attention(unet, layers):
    """Give every attention block of ``unet`` ``layers`` transformer layers, in place, without changing its output.

    Each new layer is a copy of the block's last one with its three residual branches' output
    projections (self-attention, cross-attention, feed-forward) set to zero, so it starts as the
    identity, as ControlNet's zero convolutions start (Zhang et al. 2023); training then moves them.

    Parameters
    ----------
    unet : UNet2DConditionModel
        With one integer ``transformer_layers_per_block`` in its config.
    layers : int
        At least the U-Net's current count.

    Returns
    -------
    unet : UNet2DConditionModel
        The same object; its config says ``layers``, so ``save_pretrained`` and loading agree.
    """
    current = unet.config.transformer_layers_per_block
    if not isinstance(current, int) or layers < current:
        raise ParameterError(f"the U-Net has {current} transformer layers per attention block; "
                             f"it can be deepened to more, not to {layers}")
    transformers = [m for m in unet.modules() if hasattr(m, "transformer_blocks")]
    for transformer in transformers:
        while len(transformer.transformer_blocks) < layers:
            block = copy.deepcopy(transformer.transformer_blocks[-1])
            for out in (block.attn1.to_out[0], block.attn2.to_out[0], block.ff.net[-1]):
                nn.init.zeros_(out.weight)
                nn.init.zeros_(out.bias)
            transformer.transformer_blocks.append(block)
    unet.register_to_config(transformer_layers_per_block=layers)
    return unet


def train_unet(unet, scheduler, latents, text, schedule, depth=None, options=UNetOptions()):
    """Train a conditional U-Net to predict the noise added to scaled latents.

    Parameters
    ----------
    unet : UNet2DConditionModel
        ``in_channels`` is the latent channels, plus one if it takes depth.
    scheduler : a diffusers scheduler (its ``add_noise`` and ``num_train_timesteps``)
    latents : tuple of two tensors (N, C, h, w)
        Posterior means and standard deviations, already multiplied by the scaling factor.
    text : tuple of two tensors
        ``c`` of shape (N, tokens, dim), and ``uncond`` of shape (1, tokens, dim), which replaces
        ``c`` with probability ``options.p_drop_text`` (classifier-free guidance).
    schedule : Schedule
    depth : tensor of shape (N, 1, h, w), optional
        :func:`brainldm.models.ldm.prepare_depth` maps; replaced by zeros with probability
        ``options.p_drop_depth``. Required when the U-Net has an extra input channel.
    options : UNetOptions
        With ``transformer_layers``, ``unet`` is deepened in place first.

    Returns
    -------
    losses : list of float
    """
    mean, std = latents
    c, uncond = text
    generator = schedule.generator
    if options.transformer_layers:
        deepen_attention(unet, options.transformer_layers)
    extra = unet.config.in_channels - mean.shape[1]
    if extra not in (0, 1) or (extra == 1 and depth is None):
        raise ParameterError(f"the U-Net takes {unet.config.in_channels} channels and the latents have "
                         f"{mean.shape[1]}; pass depth maps exactly when it has one extra channel")
    n_train_steps = scheduler.config.num_train_timesteps
    alphas = scheduler.alphas_cumprod
    snr = alphas / (1 - alphas)
    weight = snr.clamp(max=options.snr_gamma or math.inf) / snr  # used only with snr_gamma

    def loss_fn(index):
        n = len(index)
        z = mean[index] + std[index] * torch.randn(mean[index].shape, generator=generator)
        noise = torch.randn(z.shape, generator=generator)
        t = torch.randint(0, n_train_steps, (n,), generator=generator)
        inputs = scheduler.add_noise(z, noise, t)
        keep_text = (torch.rand(n, generator=generator) >= options.p_drop_text).view(n, 1, 1)
        cond = torch.where(keep_text, c[index], uncond.expand(n, -1, -1))
        if extra:
            keep_depth = (torch.rand(n, generator=generator) >= options.p_drop_depth).view(n, 1, 1, 1)
            inputs = torch.cat([inputs, depth[index] * keep_depth], dim=1)
        predicted = unet(inputs, t, encoder_hidden_states=cond).sample
        if not options.snr_gamma:  # the earlier stages' loss, bit for bit (their replay stays exact)
            return F.mse_loss(predicted, noise)
        return (weight[t] * (predicted - noise).pow(2).mean(dim=(1, 2, 3))).mean()

    return _optimise(unet, loss_fn, len(mean), schedule, "unet", warmup=100, ema_decay=options.ema_decay)


def _attribute_loss(logits, labels, index):
    return sum(F.cross_entropy(logits[k], labels[k][index]) for k in logits)


def train_cnn(cnn, images, labels, schedule):
    """Train the CNN to recognise attributes.

    ``images`` : pixels (N, 3, H, W) in [-1, 1], or uint8 images (N, H, W, 3) converted
    batch by batch (a large pool then stays small in memory); ``labels`` : dict of str to
    long tensor (N,).
    """
    def loss_fn(index):
        return _attribute_loss(cnn(_batch(images, index)), labels, index)

    return _optimise(cnn, loss_fn, len(images), schedule, "cnn")


def train_inception(model, images, labels, schedule, label_smoothing=0.1, flip=0.5):
    """Train the Inception analogue on its attributes, with label smoothing and random flips.

    Another objective than :func:`train_cnn`'s: only the attributes in ``labels`` (the place
    and the category, :data:`~brainldm.models.world.nets.INCEPTION_ATTRIBUTES`), cross-entropy
    with ``label_smoothing``, and each image mirrored left-right with probability ``flip``
    (neither attribute depends on the side).

    Parameters
    ----------
    images : tensor (N, 3, H, W) in [-1, 1], or uint8 array (N, H, W, 3)
        Uint8 images are converted batch by batch.
    labels : dict of str to long tensor (N,)
    schedule : Schedule
    """
    def loss_fn(index):
        x = _batch(images, index)
        mirror = torch.rand(len(index), generator=schedule.generator) < flip
        x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(-1), x)
        logits = model(x)
        return sum(F.cross_entropy(logits[k], labels[k][index], label_smoothing=label_smoothing)
                   for k in logits)

    return _optimise(model, loss_fn, len(images), schedule, "inception")


def train_image_encoder(encoder, pixels, sentences, schedule):
    """Train the image encoder contrastively (symmetric InfoNCE) against caption embeddings.

    Parameters
    ----------
    sentences : tensor of shape (N, captions, dim)
        Unit sentence embeddings of each image's captions; one caption per image is
        drawn at every step.
    """
    n_captions = sentences.shape[1]

    def loss_fn(index):
        image = encoder(pixels[index])
        pick = torch.randint(0, n_captions, (len(index),), generator=schedule.generator)
        text = sentences[index, pick]
        logits = encoder.logit_scale.exp().clamp(max=100) * image @ text.T
        target = torch.arange(len(index))
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

    return _optimise(encoder, loss_fn, len(pixels), schedule, "image_encoder")


def captioner_targets(category, color, place, size, x):
    """The captioner's class targets from true attributes (arrays as in ``Scenes``).

    Returns
    -------
    targets : dict of str to long tensor (N,)
        Absent objects get the extra "no object" class.
    """
    attrs = scene_attributes(SimpleNamespace(place=place, category=category, color=color,
                                             size=size, x=x, n_objects=(category >= 0).sum(1)))
    targets = {"place": attrs["place"], "size": attrs["size"], "position": attrs["position"]}
    for k in range(MAX_OBJECTS):
        targets[f"category{k}"] = np.where(category[:, k] >= 0, category[:, k], len(CATEGORIES))
        targets[f"color{k}"] = np.where(color[:, k] >= 0, color[:, k], len(COLOR_NAMES))
    return {k: torch.as_tensor(np.asarray(v), dtype=torch.long) for k, v in targets.items()}


def train_captioner(captioner, images, targets, schedule, fine_tune=False):
    """Train the captioner: its heads on its frozen encoder's features, or (``fine_tune``) all of it.

    ``images`` : uint8 images (N, H, W, 3), converted 256 at a time, or pixels (N, 3, H, W) in [-1, 1].
    Without ``fine_tune`` the features are computed once and only the trunk and heads learn.
    """
    captioner.backbone.requires_grad_(fine_tune)
    if fine_tune:
        def loss_fn(index):
            return _attribute_loss(captioner(captioner.features(_batch(images, index))), targets, index)
    else:
        with torch.no_grad():
            captioner.eval()
            chunks = torch.arange(len(images)).split(256)
            features = torch.cat([captioner.features(_batch(images, index)) for index in chunks])

        def loss_fn(index):
            return _attribute_loss(captioner(features[index]), targets, index)

    losses = _optimise(captioner, loss_fn, len(images), schedule, "captioner")
    captioner.requires_grad_(True)
    return losses


def _batch(images, index):
    """Pixels (n, 3, H, W) in [-1, 1] of the rows ``index``: uint8 images (N, H, W, 3) are converted."""
    return images_to_tensor(images[index.numpy()]) if isinstance(images, np.ndarray) else images[index]


def train_depth_estimator(model, pixels, depth, schedule):
    """Train the depth estimator with an absolute-error loss; ``depth`` : tensor (N, H, W)."""
    def loss_fn(index):
        return F.l1_loss(model(pixels[index]), depth[index])

    return _optimise(model, loss_fn, len(pixels), schedule, "depth_estimator")


def update_model_card(out, **entries):
    """Merge ``entries`` into ``out/model_card.json`` (written atomically); returns the card."""
    path = Path(out) / CARD
    card = json.loads(path.read_text()) if path.exists() else {}
    for key, value in entries.items():
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key].update(value)
        else:
            card[key] = value

    def write(tmp):
        Path(tmp).write_text(json.dumps(card, indent=1))

    atomic_write(path, write)
    return card


def _record(model, losses, seconds, steps, batch_size, lr, path):
    n_params = sum(p.numel() for p in model.parameters())
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    every = max(1, len(losses) // 50)
    curve = [round(float(np.mean(losses[i:i + every])), 5) for i in range(0, len(losses), every)]
    return {"steps": steps, "batch_size": batch_size, "learning_rate": lr,
            "seconds": round(seconds, 1), "params": n_params, "megabytes": round(size / 1e6, 2),
            "loss_first": curve[0], "loss_last": curve[-1], "loss_curve": curve,
            "loss_curve_every": every}


def _continued(previous, record):
    """The card entry of a resumed model: totals over its stages, the last stage's loss curve."""
    stages = previous.get("stages", [{k: previous[k] for k in _STAGE_KEYS if k in previous}])
    stages = stages + [{k: record[k] for k in _STAGE_KEYS if k in record}]
    return {**record, "steps": sum(st["steps"] for st in stages),
            "seconds": round(sum(st["seconds"] for st in stages), 1), "stages": stages,
            "loss_first": previous["loss_first"], "loss_curve_start": previous["steps"]}


def _parser():
    parser = CommandParser(prog="brainldm train-world", description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=6000, help="fresh pool images (default 6000)")
    parser.add_argument("--seed", type=int, default=0, help="world and training seed (default 0)")
    parser.add_argument("--out", default=str(weights_dir()), help="weights folder (default: the package's)")
    parser.add_argument("--models", default=",".join(ORDER),
                        help=f"comma-separated models to train (default: {','.join(ORDER)})")
    parser.add_argument("--steps-scale", type=float, default=1.0,
                        help="multiply every step count (e.g. 0.01 for a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    # 400: a rate near 0.8 then has a standard error of 0.02 (0.04 on 100), fine enough for the card's targets
    parser.add_argument("--n-eval", type=int, default=400, help="held-out images for the quality numbers (default 400)")
    parser.add_argument("--no-eval", action="store_true", help="skip the quality numbers")
    parser.add_argument("--eval-only", action="store_true", help="only recompute the quality numbers")
    parser.add_argument("--resume", action="store_true",
                        help="continue the models in --out: run only the stages of their recipe that "
                             "their card does not list yet")
    return parser


def train_world_main(argv=None):
    """``brainldm train-world``: train (and evaluate) the world models; returns a process exit status.

    Raises
    ------
    BrainLDMError
        For an unknown option or model, or an ``--out`` folder that cannot be written.
    """
    args = _parser().parse_args(argv)
    names = [] if args.eval_only else [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(ORDER))
    if unknown:
        raise BrainLDMError(f"unknown world models {unknown}; expected some of {', '.join(ORDER)} "
                            "(--models, comma-separated)")
    for option, value, low in (("--threads", args.threads, 1), ("--n-eval", args.n_eval, 2),
                               ("--n-images", args.n_images, 1)):
        if value < low:
            raise BrainLDMError(f"{option} must be an integer >= {low}, got {value}")
    if not 0 < args.steps_scale < math.inf:
        raise BrainLDMError(f"--steps-scale must be a positive number (e.g. 0.01 for a smoke run), got {args.steps_scale}")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BrainLDMError(f"the weights folder {out} cannot be created ({type(error).__name__}: {error}); "
                            "choose another one with --out") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    if names:
        _train(args, out, names)
    if not args.no_eval:
        start = time.time()
        quality = evaluate_world_models(load_world_models(out), n_eval=args.n_eval, seed=args.seed)
        update_model_card(out, quality=quality, evaluation_seconds=round(time.time() - start, 1))
        log.info("quality: %s", json.dumps(quality))
    return 0


def _train(args, out, names):
    text_encoder = TextEncoder()
    start = time.time()
    pool = load_pool(args.n_images, args.seed, text_encoder=text_encoder)
    update_model_card(out, pool={
        "n_images": int(len(pool["ids"])), "n_fresh": args.n_images,
        "n_leaked_test_images": int(is_leaked(pool["ids"], args.seed).sum()),
        "image_size": int(pool["images"].shape[1]), "seed": args.seed,
        "text_max_length": text_encoder.max_length, "seconds": round(time.time() - start, 1)})
    inputs = _Inputs(pool, images_to_tensor(pool["images"]), text_encoder, out, args.seed)
    card_path = out / CARD
    for k, name in enumerate(ORDER):
        if name not in names:
            continue
        stages = STEPS[name]
        done = 0
        if args.resume:
            previous = json.loads(card_path.read_text()).get("models", {}).get(name) if card_path.exists() else None
            done = len(previous.get("stages", [previous])) if previous else 0
        if done >= len(stages):
            log.info("%s: all %d stages of its recipe are trained already", name, len(stages))
            continue
        for stage in range(done, len(stages)):
            steps, batch_size, lr, n_fresh, *extra = stages[stage]
            options = extra[0] if extra else {}
            steps = max(1, math.ceil(steps * args.steps_scale))
            torch.manual_seed(args.seed * 100 + k)  # every stage is seeded alike (as resumed runs were)
            schedule = Schedule(steps, batch_size, lr, torch.Generator().manual_seed(args.seed * 100 + k))
            log.info("training %s, stage %d/%d: %d steps of %d images", name, stage + 1, len(stages),
                     steps, batch_size)
            start = time.time()
            if stage == 0:
                model = build(name)
            else:
                model = load_world_model(name, out).requires_grad_(True)
            losses = _train_stage(name, model, inputs, schedule, n_fresh, stage, options)
            seconds = time.time() - start
            model.save_pretrained(out / name)
            record = _record(model, losses, seconds, steps, batch_size, lr, out / name)
            record["pool_images"] = n_fresh or int(len(pool["ids"]))
            record.update(options)
            if stage > 0:
                record = _continued(json.loads(card_path.read_text())["models"][name], record)
            update_model_card(out, models={name: record})
            log.info("%s stage %d done in %.0f s, loss %.4f -> %.4f", name, stage + 1, seconds, losses[0],
                     losses[-1])


def render_pool(n_images, seed=0, size=64):
    """Fresh pool images and their scenes' attributes, without captions (cached).

    Returns
    -------
    pool : dict of str to ndarray
        ``images`` uint8 (n_images, size, size, 3) and the scenes' arrays that
        :func:`~brainldm.models.world.nets.scene_attributes` and :func:`captioner_targets` read:
        ``place`` and ``n_objects`` (n_images,), ``category``, ``color``, ``size`` and ``x``
        (n_images, MAX_OBJECTS).
    """
    ids = POOL_BASE + np.arange(n_images)

    def compute():
        scenes = render_scenes(ids, seed=seed, size=size)
        return {"images": scenes.images, **{key: getattr(scenes, key) for key in _SCENE_ARRAYS}}

    return cached_arrays("world_zoo_images", {"n_images": n_images, "seed": seed, "size": size},
                         IMAGES_VERSION, compute)


def _training_images(pool, n_fresh, seed):
    """A stage's images and scene arrays: ``n_fresh`` fresh images (:func:`render_pool`), else the shared pool."""
    return render_pool(n_fresh, seed, size=pool["images"].shape[1]) if n_fresh else pool


def _classifier_data(pool, n_fresh, seed, keys):
    """A classifier's uint8 images and long labels ``keys`` (see :func:`_training_images`)."""
    source = _training_images(pool, n_fresh, seed)
    labels = scene_attributes(SimpleNamespace(**{key: source[key] for key in _SCENE_ARRAYS}))
    return source["images"], {key: torch.as_tensor(labels[key], dtype=torch.long) for key in keys}


@dataclass(frozen=True)
class _Inputs:
    """What every stage of ``brainldm train-world`` reads: the pool, its pixels, the text encoder, the
    weights folder (the models trained before) and the world seed."""

    pool: dict
    pixels: torch.Tensor
    text_encoder: TextEncoder
    out: Path
    seed: int


def _stage_scheduler(out, stage, noise_shift=None):
    """The scheduler a U-Net stage trains under: the unshifted one at the first stage, else the one
    the stages before saved in ``out``; ``noise_shift`` shifts the unshifted one (shifts never compound)."""
    if noise_shift:
        return shifted_scheduler(build("scheduler"), noise_shift)
    return build("scheduler") if stage == 0 else load_world_model("scheduler", out)


def _train_stage(name, model, inputs, schedule, n_fresh, stage, options):
    """Stage ``stage`` (from 0) of ``name``'s recipe (:class:`_Inputs`, a :class:`Schedule`, the stage's
    :data:`STAGE_OPTIONS`); returns the losses."""
    pool, pixels, out = inputs.pool, inputs.pixels, inputs.out
    if name == "vae":
        if stage:
            return train_vae(model, _training_images(pool, n_fresh, inputs.seed)["images"], schedule,
                             decoder_only=True)
        losses = train_vae(model, pixels, schedule)
        means, _ = encode_latents(model, pixels[:1000])
        model.register_to_config(scaling_factor=vae_scaling_factor(means))
        return losses
    if name == "unet":
        vae, scheduler = load_world_model("vae", out), _stage_scheduler(out, stage, options.get("noise_shift"))
        mean, std = encode_latents(vae, pixels)
        scale = vae.config.scaling_factor
        depth = prepare_depth(pool["depth"], mean.shape[-2:])
        losses = train_unet(model, scheduler, (mean * scale, std * scale),
                            (torch.from_numpy(pool["c"]), inputs.text_encoder.unconditional()), schedule, depth=depth,
                            options=UNetOptions(**options))
        scheduler.save_pretrained(out / "scheduler")
        return losses
    if name == "cnn":
        images, labels = _classifier_data(pool, n_fresh, inputs.seed, ATTRIBUTES)
        return train_cnn(model, images, labels, schedule)
    if name == "inception":
        images, labels = _classifier_data(pool, n_fresh, inputs.seed, INCEPTION_ATTRIBUTES)
        return train_inception(model, images, labels, schedule)
    if name == "image_encoder":
        return train_image_encoder(model, pixels, torch.from_numpy(pool["sentences"]), schedule)
    if name == "captioner":
        if stage == 0:  # its encoder starts as the trained CNN's (as BLIP's ViT starts ImageNet-trained)
            model.backbone.load_state_dict(load_world_model("cnn", out).backbone.state_dict())
        source = _training_images(pool, n_fresh, inputs.seed)
        targets = captioner_targets(source["category"], source["color"], source["place"], source["size"], source["x"])
        return train_captioner(model, source["images"], targets, schedule, fine_tune=stage > 0)
    return train_depth_estimator(model, pixels, torch.from_numpy(pool["depth"]), schedule)
