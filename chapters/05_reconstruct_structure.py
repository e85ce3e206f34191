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
# # 5. `+G`: structure through a generator prior
#
# Takagi & Nishimoto, technical report {cite:p}`takagi2023report`, section 2.2; the method is Shen,
# Horikawa, Majima & Kamitani, *Deep image reconstruction from human brain activity* (PLoS Comput.
# Biol., 2019).
#
# The baseline's `X_z` {cite:p}`takagi2023cvpr` comes from a linear map to the VAE latent. The
# report's second extension decodes the features of several layers of a CNN instead, searches for
# the image whose CNN features match the decoded ones by optimising the input of a generator (a GAN
# in Shen et al.), and hands that image to img2img in place of `X_z`. The report: accuracy "tended
# to increase, particularly when the reconstructed images were evaluated with low-level latent
# features", at the price of a "complex and computationally intensive optimization".
#
# ## Overview
# 1. Decoding the CNN's early, middle and late layers.
# 2. The optimisation: the generator is the diffusion model's own VAE decoder
#    {cite:p}`rombach2022ldm` (the world has no GAN, and no GAN is in the NSD registry); its loss,
#    and its cost per image.
# 3. `X_z`, the `+G` image `X_g`, and the `+T` and `+T+G` reconstructions.
# 4. Scores of `X_g` against `X_z`, and of `+T+G` against `+T`, with paired confidence intervals.
#
# ## Prerequisites
# Chapter 4 (`+T`: decoded captions; its decoders and reconstructions are cached and reused).

# %% tags=["parameters"]
dataset = "world"  # "world" or "nsd"
subject = "subj01"
dataset_options = {}  # passed to load_dataset
n_shown = 6  # test images shown in the figures
extension = {}  # overrides of brainldm.generate.extensions.ExtensionSettings, e.g. {"iterations": 10, "lr": 0.05}
sampler = {}  # overrides of the extensions' brainldm.models.ldm.SamplerSettings, e.g. {"num_inference_steps": 4}
seed = 0
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports and setup
# The extensions' settings include `+G`'s: the CNN's layers and their weights, the pooling grid,
# Adam's steps and learning rate (on NSD the report's 200 steps; a few on the world).

# %%
from myst_nb import glue

from brainldm.book import open_chapter
from brainldm.figures import ci_bars, image_grid, paper_beside, table1_by_subject
from brainldm.generate.extensions import ExtensionRun, extension_settings
from brainldm.generate.optimise import plot_losses

# %%
run = open_chapter(globals(), purpose=None)
study = ExtensionRun(run.ds, run.models, extension_settings(dataset, sampler, seed, **extension))
net = run.models.feature_nets[study.settings.net]
print(f"feature net: {net.name}; generator: the VAE decoder of {run.models.name}")
print(study.settings)

# %% [markdown]
# ## 1. Decoding the CNN's layers
# The three layers of Table 1's CNN columns (AlexNet on NSD {cite:p}`krizhevsky2012alexnet`) are
# decoded from the report's ROIs (chapter 4), the spatial ones averaged on a coarse grid first: a
# convolutional layer has tens of thousands of units, and the grid keeps the regression cheap while
# keeping where things are.

# %%
print(study.decoding("structure.early", "structure.middle", "structure.late").round(3).to_string(index=False))

# %% [markdown]
# ## 2. The optimisation
# Starting from the decoded `z`, Adam changes the latent so that the CNN features of its image
# approach the decoded ones; the loss of a layer is its squared error relative to the decoded
# features' squared norm. All test images are optimised together (each image's loss depends only on
# its own latent). For reference, the dashed line is the loss of the *seen* images: an optimisation
# that goes below it is fitting the decoder's errors rather than the image.

# %%
losses = study.structure_losses()
ax = plot_losses({"X_g": study.structural["loss"]}, {"seen images": losses["seen image"].mean()}, xlabel="Adam step")
print({name: round(float(values.mean()), 3) for name, values in losses.items()})
print(study.structure_cost())

# %% [markdown]
# ## 3. What the images look like
# `X_z` and `X_g` are the images img2img starts from; the `+T` and `+T+G` reconstructions share the
# decoded caption and the noise, and differ only in that starting image. The columns above the
# images are the decoded captions.

# %%
compared = study.compare(("baseline", "+T", "+T+G"))
fig = image_grid(study.panels(("X_z", "X_g", "+T", "+T+G"), n_shown), col_labels=study.captions[:n_shown])

# %% [markdown]
# ## 4. Scores
# First the starting images themselves: `X_z` against `X_g` on pixels (PixCorr, SSIM
# {cite:p}`wang2004ssim`) and on every identification column. Note that the CNN columns (and, on the
# world, Inception, which is the world CNN's late layer) are measured with the same network whose
# decoded features `X_g` was optimised to match, so part of their rise is by construction; the CLIP
# columns {cite:p}`radford2021clip` use another network.

# %%
print(study.start_image_scores().round(3).to_string(na_rep="–"))

# %% [markdown]
# Then the reconstructions: `+T+G` against `+T` (the effect of `+G` alone), then both against the
# baseline, each with a 95% paired bootstrap CI over test images (`*`: the CI excludes 0), and the
# report's numbers for the same subject beside this run's.

# %%
print("against +T:", compared.changes_text("+T"), "against the baseline:", compared.changes_text(), sep="\n")
ax = ci_bars(compared.changes, x="metric", hue="method", value="change", chance=0, ylabel="change in identification")
side = paper_beside(compared.means, compared.paper_rows(table1_by_subject()))
glue("g_changes", compared.summary("+T+G", "+T"), display=False)

# %% [markdown]
# ## Summary
# - A few Adam steps through the VAE decoder bring the decoded CNN features of `X_g` towards the
#   level of the seen images' own features (section 2), and section 4 shows how much more
#   identifiable the starting image becomes than `X_z` — in the CNN columns partly by construction;
#   the CLIP columns, which use another network, and the pixel scores say whether the image itself
#   improved.
# - After img2img, against `+T`, `+T+G` {glue:text}`g_changes` in this run. The report, too, found
#   `+G`'s gains modest and uneven (`+T+G` below `+T` for subj05). The cost per image is printed in
#   section 2; on NSD with a real GAN and 200 steps it is the "computationally intensive
#   optimization" the report warns of.
#
# ## What's next
# Chapter 6 adds decoded depth (`+D`).

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
