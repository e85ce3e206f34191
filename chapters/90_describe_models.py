# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Appendix: the world models' card
#
# Takagi & Nishimoto {cite:p}`takagi2023cvpr` reconstruct what people saw with Stable Diffusion v1.4
# {cite:p}`rombach2022ldm`, and their technical report {cite:p}`takagi2023report` adds BLIP captions
# {cite:p}`li2022blip`, DPT depth {cite:p}`ranftl2021dpt` and SD 2 depth; they score reconstructions
# with CLIP {cite:p}`radford2021clip`, AlexNet {cite:p}`krizhevsky2012alexnet` and Inception
# {cite:p}`szegedy2016inception`. None of those weights can reach a machine without a network, so the
# embedded world has its own small models **of the same classes** (diffusers `AutoencoderKL`,
# `UNet2DConditionModel`, `DDIMScheduler`; a text encoder; CLIP-, CNN-, BLIP- and DPT-like
# networks), trained on world images by `brainldm train-world` and shipped with the package.
# This appendix says what they were trained on, how long, how big they are and how good they are,
# and shows what they generate.
#
# ## Overview
# 1. Training data: the pool, and the shared test images deliberately leaked into it.
# 2. Models: classes, sizes, steps and training time; loss curves.
# 3. Quality on held-out images, beside the targets and chance levels.
# 4. Samples: VAE reconstructions, text→image, img2img at several strengths, depth-conditioned.
# 5. Captions and depth maps of held-out images.
#
# ## Prerequisites
# Only this book's package: the weights ship in `brainldm/world_zoo/weights/`. The numbers of the
# shipped card were measured once at the end of training ({glue:text}`card_n_eval` held-out images,
# {glue:text}`card_steps` DDIM steps); this chapter measures them again on `n_eval` held-out images
# with the `sampler` settings given. Retrain everything with `brainldm train-world` (section 2 says
# how long the shipped models took).

# %% tags=["parameters"]
n_eval = 100  # held-out images measured here (at least 2; retrieval is "among n_eval")
seed = 0  # world seed and sampler seed
sampler = {"num_inference_steps": 25}  # overrides of brainldm.models.ldm.SamplerSettings (Takagi: 50 steps)
n_show = 6  # images shown per grid

# %% [markdown]
# ## Imports

# %%
from myst_nb import glue

from brainldm.book.run_record import show_provenance
from brainldm.data.datasets.world.scenes import render_scenes
from brainldm.figures import image_grid
from brainldm.figures.describe import loss_curves
from brainldm.models.ldm import SamplerSettings
from brainldm.models.world import load_world_models, model_card
from brainldm.training.metrics import cached_evaluation, held_out_ids, strength_identification
from brainldm.training import report

# %%
card, models = model_card(), load_world_models()
settings = SamplerSettings(seed=seed, **sampler)
show_provenance(globals())

# %% [markdown]
# ## 1. Training data
# Every world model learns from the same pool of world images (with their five captions and true
# depth maps): fresh images that no simulated subject sees, plus a share of the shared test images
# like LAION-5B's of NSD's (the report found about 7% of NSD's test images in LAION-5B, on which
# Stable Diffusion and CLIP were trained). The leak is deliberate: the overlap-control chapter needs
# a known answer. Held-out images here are another id range again (`held_out_ids`).

# %%
print(report.pool_summary(card))

# %% [markdown]
# ## 2. Models
# | model | class | trained on | real counterpart |
# | --- | --- | --- | --- |
# | `vae` | diffusers `AutoencoderKL` | pixels (MSE + L1 + 1e-6 KL) | SD's VAE (`z`) |
# | `text_encoder` | pretrained MiniLM-L6 (frozen) | nothing here | CLIP text encoder (`c`) |
# | `unet` | diffusers `UNet2DConditionModel`, 4 latent + 1 depth channel | noise prediction on `z`, 10% text and 50% depth dropped; later stages min-SNR weighted (γ = 5), EMA weights, then a second and a third transformer layer in every attention block, last the shifted noise schedule | SD 1.4 / SD 2 depth |
# | `scheduler` | diffusers `DDIMScheduler`: SD's betas with every log-SNR raised by 2 log 4 (16 × 16 latents, SD's are 64 × 64) | — | SD's DDIM |
# | `image_encoder` | convolutional encoder, early / middle / late layers | InfoNCE against caption sentence embeddings | CLIP image encoder |
# | `cnn` | convolutional classifier (GroupNorm, SiLU), early / middle / late layers | place, main object's category, colour, size, position, number of objects | AlexNet |
# | `inception` | multi-branch blocks (1×1, 3×3, two 3×3, pool-projection; batch norm, ReLU), pooled features | place and main object's category, label smoothing, flips | Inception-v3 |
# | `captioner` | its own convolutional encoder (started from the CNN's, then fine-tuned), an MLP on its middle and late layers | attributes of up to three objects, then a caption template | BLIP (its own ViT) |
# | `depth_estimator` | small U-Net | per-pixel depth (L1) | DPT |
#
# The captioner predicts attributes and fills a template rather than decoding words: in the world
# a caption is a function of the attributes, so this is the smallest model that writes one.
# `c` is MiniLM's last hidden state over its padded tokens (section 1), averaged over an image's five captions,
# as Takagi averages the CLIP embeddings of COCO's five.

# %%
totals = report.card_totals(card)
print(report.training_table(card).to_string(na_rep="–"), totals, sep="\n")
for name, value in totals.as_dict().items():
    glue(name, value, display=False)

# %% [markdown]
# Some models are trained in stages (`brainldm.training.train.STEPS`): each stage restarts the
# optimiser and its learning-rate schedule from the previous stage's weights, and the CNN's last
# stage sees fresh images instead of the shared pool, on which it had begun to over-fit (the
# `images` column). `brainldm train-world` replays every stage; the card lists them, and a curve
# shows the last one.

# %%
print(report.stage_table(card).to_string())
fig = loss_curves(card)

# %% [markdown]
# ## 3. Quality on held-out images
# The models must be good enough for reconstructions and encoding maps to mean something: a faithful
# VAE, a U-Net that draws what the caption says, img2img that keeps an image's identity, a CLIP-like
# encoder that matches images to captions, and recognisers good enough to score all of this.
# Text→image samples are scored by the world CNN (chance: one over the number of categories or
# colours); two-way identification has chance 0.5. The shipped card is measured on
# {glue:text}`card_n_eval` held-out images (`brainldm train-world --n-eval`; a rate near 0.8 has a
# standard error of 0.02 on 400, 0.04 on 100); retrieval picks among a run's images, so its chance
# is one over their number and its rate falls as they grow. img2img starts from the image's `z`, so
# the VAE round trip's identification, printed beside it, is its ceiling; the CNN's attribute accuracy
# on the round trip says what `z` loses (thin and small objects blur into the background).

# %%
quality, images = cached_evaluation(models, n_eval=n_eval, seed=seed, settings=settings)
runs = {f"this run ({quality['n_eval']} images)": quality, f"shipped card ({card['quality']['n_eval']})": card["quality"]}
print(report.quality_table(**runs).to_string(na_rep="–"))
print(report.quality_details(quality, card["quality"]))

# %% [markdown]
# ## 4. Samples
# Each column is one held-out image. From the top: the image; its VAE reconstruction
# (decode(encode(x))); text→image from its five captions; img2img at the sampler's strength from its
# own `z` and `c` (Takagi's `X_zc` with perfectly decoded inputs); text→image conditioned also on its
# true depth map (`+D`).

# %%
scenes = render_scenes(held_out_ids(min(n_show, n_eval)), seed=seed)
fig = image_grid(report.sample_rows(quality, images, len(scenes.ids)), col_labels=[c[0] for c in scenes.captions])

# %% [markdown]
# img2img noises `z` to a fraction `strength` of the DDIM schedule and denoises it under `c`: at low
# strength the layout survives, at 1.0 only the caption does. How much survives a given noise level
# depends on the latents' size: averaged over a patch of k × k latent pixels the noise falls k-fold
# and the signal does not, so SD's schedule, made for 64 × 64 latents, wipes out the layout of the
# world's 16 × 16 ones sooner. The world's schedule is therefore SD's with every log signal-to-noise
# ratio raised by 2 log 4 {cite:p}`hoogeboom2023simple`, and the U-Net's last stage was trained
# under it, so that Takagi's strength 0.8 keeps the world's layout as SD's keeps NSD's. Before the
# shift, the CNN found the main object's position in 0.57 of the default 100 held-out images at
# strength 0.8 (0.31 at 1.0, from the caption alone). The shift has a cost: text→image starts from
# pure noise, where the shifted schedule expects a little of the image to remain (SD's low
# frequencies meet the same mismatch {cite:p}`lin2024flawed`); the card's category rate fell from
# 0.845 to 0.828 (400 images, 50 steps), and with this chapter's 25 steps from 0.82 to 0.73 (100
# images). The table measures what survives on the `n_eval` held-out images: two-way identification
# in the late layers and the CNN's accuracy on the main object's attributes. The captions do not say
# where the object is, so its position comes from `z` alone; the VAE round trip is img2img's
# ceiling.

# %%
strengths = [0.3, 0.5, 0.8, 1.0]
series = report.strength_series(models, scenes.images, scenes.captions, strengths, settings)
fig = image_grid({"image": scenes.images, **{f"strength {s}": series[s] for s in strengths}})
print(strength_identification(models, strengths, n_eval, seed, settings).round(3).to_string())

# %% [markdown]
# ## 5. Captions and depth
# The captioner (BLIP's stand-in, used by `+T`) and the depth estimator (DPT's, used by `+D`) on
# held-out images.

# %%
said, depth = report.captions_and_depth(models, scenes.images)
print("\n\n".join(f"true:      {truth[0]}\ncaptioner: {caption}" for truth, caption in zip(scenes.captions, said)))
fig = image_grid([scenes.images, scenes.depth, depth], row_labels=["image", "true depth", "estimated"], cmap="gray")

# %% [markdown]
# ## Summary
# The world models are small ({glue:text}`parameters_m:.1f` M parameters, {glue:text}`megabytes:.0f` MB
# together) and were trained in {glue:text}`training_hours:.1f` hours on one shared CPU thread, yet
# they are the same classes as Stable Diffusion's components, so the reconstruction and encoding
# chapters run the same code on the world and on NSD. The table in section 3 says which quality
# targets they meet; where one is missed, the number is there and the samples show why.
#
# ## What's next
# - Chapter 2 decodes `z` and `c` from the simulated subjects' fMRI and reconstructs with these
#   models' img2img.
# - Chapter 3 scores reconstructions with the early, middle and late layers of the image encoder and
#   the CNN shown here.
# - Chapter 13 uses the leaked test images of section 1 as the LAION-overlap control.

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
