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
# # 10. How much noise before `z_c` carries `c`?
#
# img2img adds noise to the image latent `z` and removes it again under the text conditioning `c`
# {cite:p}`rombach2022ldm`. The more noise (the higher the *strength*), the more of the result the
# U-Net makes up from `c`. Takagi & Nishimoto {cite:p}`takagi2023cvpr` (figure 7) compare encoding
# models of `z` and of `z_c` across noise levels: with little noise `z` predicts voxels all over
# the cortex better than `z_c`; as the noise grows, `z_c` predicts *higher* visual cortex better
# than `z` — the image's semantic content is being emphasised.
#
# ## Overview
# 1. `z_c` at several strengths, and an encoding model of each.
# 2. Per ROI: accuracy of `z_c` minus accuracy of `z`, with confidence intervals, against strength.
# 3. Maps: where on the cortex `z_c` overtakes `z`.
# 4. World only: do the voxels where `z_c` wins lean semantic in their true tuning?
#
# ## Prerequisites
# Chapter 9 (encoding models; the img2img run at the sampler's own strength is the one it made,
# reused from the cache).

# %% tags=["parameters"]
dataset = "world"
subject = "subj01"
dataset_options = {}
n_train = None  # training images of the encoders; None: 700 on the world, all on NSD
strengths = [0.4, 0.8, 1.0]  # img2img strengths (multiples of 1 / num_inference_steps); 1.0 ignores z
sampler = {}  # overrides of brainldm.models.ldm.SamplerSettings (but strength), e.g. {"guidance_scale": 5.0}
n_boot = 1000  # bootstrap resamples of the test images (the same for every strength: paired differences)
fdr = 0.05  # a voxel counts as predicted where z or some z_c is significant at this false discovery rate
seed = 0
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports and setup

# %%
from myst_nb import glue

from brainldm import figures
from brainldm.book import open_chapter
from brainldm.evaluate.truth import by_true_tuning
from brainldm.fit.ldm_encoding import noise_level_gains

# %%
run = open_chapter(globals(), "encoding")
ds, models = run.ds, run.models

# %% [markdown]
# ## 1. `z_c` at every strength
# With N DDIM steps {cite:p}`song2021ddim` and strength s, img2img noises `z` to the `int(N s)`-th
# last timestep and runs that many steps (the table). The run at the sampler's strength also
# records the U-Net (chapters 11 and 12), so it is shared with them.

# %%
gains = noise_level_gains(ds, models, strengths, run.sampler, n_train=n_train, fdr=fdr, n_boot=n_boot, seed=seed)
print(gains.study.describe())
gains.runs

# %% [markdown]
# ## 2. `z_c` minus `z`, per ROI and strength
# ROI means of r(`z_c`) − r(`z`) with 95 % bootstrap intervals over test images. Above zero,
# `z_c` predicts the ROI better than the image latent it started from.

# %%
ax = figures.ci_bars(gains.by_roi, x="roi", hue="strength", ylabel="r(z_c) − r(z), ROI mean")
gains.means().round(3)

# %% [markdown]
# Where the interval excludes zero:

# %%
gains.verdicts()

# %% [markdown]
# ## 3. Where `z_c` overtakes `z`
# Each voxel's r(`z_c`) − r(`z`) at every strength, and the lowest strength at which `z_c`
# predicts the voxel better than `z` by more than 0.05 (voxels where neither model is significant
# are left out).

# %%
fig = figures.flatmaps(ds, gains.gains(), figures.MapScale("RdBu_r", -0.15, 0.15, "r(z_c) − r(z)"),
                       figures.MapLayout(ncols=3))
first, counts = gains.first_above(0.05)
fig = figures.category_map(ds, first, [f"from {s}" for s in strengths],
                           title="lowest strength at which z_c beats z by > 0.05")
counts

# %% [markdown]
# ## 4. Against the simulated truth (world only)
# If `z_c` gains on `z` because it takes on `c`'s semantic content, the gain should be larger in
# voxels whose true tuning is semantic than in low-level ones: the mean r(`z_c`) − r(`z`) over the
# significant voxels of each true tuning class.

# %%
if ds.has_ground_truth:
    print(by_true_tuning(ds, gains.gains(), voxels=gains.predicted).round(3).to_string())

# %%
for name, value in gains.headline().items():
    glue(name, value, display=False)

# %% [markdown]
# ## Summary
# - Paper (NSD, SD 1.4, figure 7): at low noise `z` beats `z_c` across the cortex; at high noise
#   `z_c` beats `z` in higher visual cortex.
# - This run: r(`z_c`) − r(`z`) at the lowest strength is {glue:text}`early_first:+.3f` in early
#   and {glue:text}`ventral_first:+.3f` in ventral cortex; at the highest,
#   {glue:text}`early_last:+.3f` and {glue:text}`ventral_last:+.3f` (section 2). On the world the
#   first half of the paper's finding holds — at low strength `z_c` is `z` with a little noise and
#   predicts slightly worse, most in early cortex. The second half holds only in a weak, relative
#   form: as the strength grows `z_c` loses far more in early cortex than in ventral cortex, and
#   more in voxels whose true tuning is low-level than in semantic ones (section 4), but on average
#   it does not *overtake* `z` in any stream; only scattered voxels, mostly at strength 1 (pure
#   noise, no `z` at all), are predicted better by `z_c` (section 3).
# - Why: the world's U-Net (small, trained on the world's images, and run here without
#   classifier-free guidance and with few DDIM steps so that the book builds on a CPU) redraws
#   objects from the caption poorly; its images keep the seen layout, blurred (the appendix shows
#   samples). What it takes from `c` is too coarse to out-predict the true image latent even in
#   semantic voxels. Guidance and steps are sampler settings here (`sampler`).
#
# ## What's next
# Chapter 11 follows a single img2img run step by step: which step's latent predicts which voxels.

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
