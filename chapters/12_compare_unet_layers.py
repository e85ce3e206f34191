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
# # 12. What the U-Net's layers explain
#
# The denoising U-Net {cite:p}`rombach2022ldm` is a stack of blocks that shrink the latent to a
# bottleneck and grow it back. Takagi & Nishimoto {cite:p}`takagi2023cvpr` (figure 9) fit encoding
# models to the activations of each layer at early, middle and late stages of denoising. Early in
# denoising the **bottleneck** predicts best all over the cortex; as denoising proceeds, the
# **first and last** (outer) layers come to predict early visual cortex best while the bottleneck
# keeps the lead in higher visual cortex.
#
# ## Overview
# 1. Activations of every down block, the mid block (the bottleneck) and every up block at the
#    first, middle and last step of the img2img run of chapter 9; an encoding model of each.
# 2. Accuracy per layer and stage, per ROI, with confidence intervals.
# 3. The best layer of every voxel at each stage, on the cortex.
# 4. World only: do low-level voxels prefer outer layers and semantic voxels the bottleneck?
#
# ## Prerequisites
# Chapter 9 (its img2img run recorded the activations). How they are recorded and reduced:
# a forward hook on each block keeps its output for the conditional input, average-pooled over
# space to a small grid (section 1 gives each layer's pooled shape), see `brainldm.features.unet`.

# %% tags=["parameters"]
dataset = "world"
subject = "subj01"
dataset_options = {}
n_train = None  # training images of the encoders; None: 700 on the world, all on NSD
sampler = {}  # overrides of brainldm.models.ldm.SamplerSettings (as chapter 9's), e.g. {"num_inference_steps": 4}
n_boot = 500  # bootstrap resamples (fewer than chapter 9's: every layer at every stage shares them)
fdr = 0.05  # a voxel's best layer is counted where some layer is significant at this false discovery rate
seed = 0
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports and setup

# %%
from myst_nb import glue

from brainldm.book import open_chapter
from brainldm.evaluate.truth import by_true_tuning
from brainldm.figures import category_map
from brainldm.figures.panels import ci_panels
from brainldm.fit.ldm_encoding import layer_scores

# %%
run = open_chapter(globals(), "encoding")

# %% [markdown]
# ## 1. One encoding model per layer and stage
# The layers from the input through the bottleneck (the deepest) to the output, with the shape of
# their pooled activations.

# %%
layers = layer_scores(run.ds, run.models, run.sampler, n_train=n_train, fdr=fdr, n_boot=n_boot, seed=seed)
print(layers.study.ldm.describe())
layers.describe()

# %% [markdown]
# ## 2. Accuracy per layer and stage
# ROI means of test r with 95 % bootstrap intervals, one panel per stage, layers from the input
# (left) through the bottleneck to the output (right).

# %%
fig = ci_panels(layers.table, "stage", "layer", hue="roi", ylabel="mean test r")

# %% [markdown]
# The best layer of every ROI at every stage, and the accuracy of the outermost layers and of the
# bottleneck in early and ventral cortex:

# %%
print(layers.best_by_roi().to_string())
layers.outer_and_bottleneck().round(3)

# %% [markdown]
# ## 3. The best layer of every voxel
# At each stage, the layer whose model predicts a voxel best (voxels no layer predicts
# significantly are left out), and the share of voxels each layer wins.

# %%
fig = category_map(run.ds, layers.winners, list(layers.layers), title=f"best U-Net layer per stage ({subject})")
layers.shares().round(3)

# %% [markdown]
# ## 4. Against the simulated truth (world only)
# The paper reads its maps as outer layers ↔ low-level (early visual cortex) and the bottleneck
# ↔ semantic (higher visual cortex). In the world each voxel's true tuning is known: the table
# gives, per stage and true tuning class, the mean depth of the winning layer (0: outermost,
# the bottleneck is deepest) and the share of voxels won by an outer layer or by the bottleneck.

# %%
if run.ds.has_ground_truth:
    print(by_true_tuning(run.ds, layers.winner_depths()).round(3).to_string())

# %%
for name, value in layers.headline().items():
    glue(name, value, display=False)

# %% [markdown]
# ## Summary
# - Paper (NSD, SD 1.4, figure 9): early in denoising the bottleneck predicts best everywhere;
#   later the outer layers win early visual cortex and the bottleneck higher visual cortex.
# - This run: one layer, {glue:text}`best_layer`, is the best layer in a share
#   {glue:text}`best_layer_share:.2f` of the (ROI, stage) pairs of section 2, and the bottleneck in
#   a share {glue:text}`bottleneck_share:.2f`. On the world the best layer is `up2` (the last block
#   before the output block, at the latent's full resolution) almost everywhere, and the
#   bottleneck does not lead. Part of the paper's pattern is there in weaker form: the input-side
#   outer layer (`down1`) is the worst layer at the first step, when it sees mostly noise, and
#   gains the most as denoising proceeds — more in early than in ventral cortex — so that at the
#   last step the layers are close and outer layers win a larger share of voxels (section 3).
#   Against the truth (section 4), voxels with low-level tuning are won by slightly shallower
#   layers than semantic ones at every stage, a small difference.
# - Differences from the paper's setting that matter here: the world U-Net has fewer levels and
#   far fewer channels than SD 1.4, its bottleneck is small, and every block is pooled to the same
#   small grid (section 1), which hides the resolution advantage of outer layers.
#
# ## What's next
# Chapter 13 asks whether the test images were in the models' training set, and chapter 14 puts
# every analysis of the book beside the simulated truth.

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
