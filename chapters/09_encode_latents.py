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
# # 9. Which voxels do `z`, `c` and `z_c` explain?
#
# The second half of Takagi & Nishimoto {cite:p}`takagi2023cvpr` turns decoding around: instead of
# predicting the latent diffusion model's {cite:p}`rombach2022ldm` inputs from the brain, it predicts
# every voxel from the model's parts and draws the accuracy on the cortex (their figure 6). The
# image latent `z` predicts the back of visual cortex — early visual areas — best; the text
# conditioning `c` predicts higher, anterior visual cortex best and is also good over a wide area;
# and `z_c`, the latent after img2img under `c`, looks much like `z` and is best in early visual
# cortex.
#
# ## Overview
# 1. Encoding models: one ridge regression per voxel from `z`, `c` and `z_c`.
# 2. Their accuracy on the cortex.
# 3. Per-ROI accuracy with confidence intervals; is `z` better than `c` in early cortex and `c`
#    better than `z` in ventral cortex?
# 4. Beyond the paper: the variance `z` and `c` explain *uniquely* (variance partitioning).
# 5. World only: does the feature that wins a voxel match how the voxel is really tuned?
#
# ## Prerequisites
# Chapter 1 (the data, noise ceilings). The models are the same as in chapter 2; `z` and `c`
# here are the *seen* image's latent and its captions' embedding, not decoded ones.

# %% tags=["parameters"]
dataset = "world"  # "world" or "nsd"
subject = "subj01"  # any of the dataset's subjects
dataset_options = {}  # passed to load_dataset
n_train = None  # training images of the encoders; None: 700 on the world, all on NSD
sampler = {}  # overrides of brainldm.models.ldm.SamplerSettings for z_c's img2img, e.g. {"num_inference_steps": 4}
n_boot = 1000  # bootstrap resamples of the test images for the confidence intervals
fdr = 0.05  # false discovery rate of the voxel-wise tests
seed = 0
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports and setup
# The dataset, the models and the img2img settings of `z_c` (`SAMPLER_DEFAULTS["encoding"]` of
# `brainldm.models.ldm`: Takagi & Nishimoto's on NSD; on the world fewer steps and no
# classifier-free guidance), printed below.

# %%
from myst_nb import glue

from brainldm.book import open_chapter
from brainldm.evaluate.truth import tuning_agreement
from brainldm.figures import MapLayout, MapScale, category_map, ci_bars, flatmaps
from brainldm.fit.ldm_encoding import latent_encoding

# %%
run = open_chapter(globals(), "encoding")
ds, models = run.ds, run.models

# %% [markdown]
# ## 1. Encoding models
# Each voxel gets its own linear model from a feature to the voxel's response (repeats of an
# image averaged). The feature's dimensions are standardised; the fit is kernel ridge regression,
# whose cost depends on the number of images rather than of feature dimensions, so `c`
# (many times `z`'s dimensions, see the table) is as cheap as `z`. Each voxel's penalty is chosen
# from a grid (`brainldm.fit.encoding.ENCODING_ALPHAS`) by generalised cross-validation over the
# training images. Accuracy is Pearson's r between prediction and response over the test images;
# a voxel counts as predicted when r > 0 survives a one-sided t-test at the false discovery rate
# `fdr` (Benjamini–Hochberg over voxels; `brainldm.fit.encoding.significant`).
#
# The img2img run that makes `z_c` also records the denoising trajectory and the U-Net's
# activations, which chapters 11 and 12 use.

# %%
enc = latent_encoding(ds, models, run.sampler, n_train=n_train, fdr=fdr, n_boot=n_boot, seed=seed)
print(enc.study.describe())
enc.study.summary().round(3)

# %% [markdown]
# ## 2. Maps
# Test-set r of every voxel (the paper's figure 6). On the world the voxels sit on the flattened
# cortex of pycortex's subject S1 {cite:p}`gao2015pycortex`, with its ROIs outlined; on NSD
# {cite:p}`allen2022nsd` the maps are slices of the subject's volume.

# %%
fig = flatmaps(ds, enc.study.r_maps(["z", "c", "z_c"]), MapScale(vmin=0, vmax=0.8, label="test r"), MapLayout(ncols=3),
               title=f"encoding accuracy ({subject})")

# %% [markdown]
# ## 3. Accuracy per ROI
# ROI means of r with 95 % confidence intervals from `n_boot` bootstrap resamples of the test
# images. The same resamples serve every feature, so a difference between two features has its
# own interval.

# %%
ax = ci_bars(enc.by_roi, x="roi", hue="feature", ylabel="mean test r")
enc.means().round(3)

# %% [markdown]
# The paper's claim, as differences of ROI means (`z − c`), for every stream and for the three
# areas of the early stream, with a verdict where the interval excludes zero:

# %%
enc.contrast.set_index("roi")[["mean", "ci_low", "ci_high", "verdict"]].round(3)

# %% [markdown]
# Accuracy relative to what each voxel's noise allows: the median over an ROI's voxels of r
# divided by the voxel's noise ceiling (`sqrt(NC / 100)`, the highest r that noise leaves).

# %%
enc.normalized.round(3)

# %% [markdown]
# ## 4. What `z` and `c` explain uniquely
# A model of `z` and `c` together against each alone splits the test-set variance a voxel's model
# explains (R²) into a part only `z` explains (R²(z + c) − R²(c)), a part only `c` explains, and a
# shared part. This is not in the paper; it separates "`z` predicts this voxel" from "`z` predicts
# it *because* `z` carries what `c` carries". The joint model is a *banded* ridge (himalaya's
# `MultipleKernelRidgeCV` {cite:p}`dupre2022himalaya`): each feature space gets its own penalty per
# voxel, so `c`'s many more dimensions cannot crowd out `z`'s under one shared penalty. The share
# of the joint kernel each voxel gives `z` is a map of its own.

# %%
fig = flatmaps(ds, enc.partition, MapScale("RdBu_r", -0.15, 0.15, "test R²"), MapLayout(ncols=3))
ax = ci_bars(enc.unique, x="roi", hue="feature", ylabel="test R² (mean over voxels)")
fig = flatmaps(ds, {"share of z in the banded model": enc.study.results["z+c"].kernel_weights[0]},
               MapScale("RdBu_r", 0, 1, "kernel weight of z"))
enc.unique_means().round(3)

# %% [markdown]
# ## 5. Against the simulated truth (world only)
# Each simulated voxel's response mixes a low-level drive (oriented contrast energy and colour in
# its population receptive field), a semantic drive (object categories, place, colour) and a spatial
# one (position, depth, number); its *true tuning class* is the largest (chapter 1). If `z` stands
# for low-level and `c` for semantic tuning, the feature that predicts a voxel better should match
# its class. Voxels where neither model is significant, or whose class is spatial, are left out.

# %%
if ds.has_ground_truth:
    agreement = tuning_agreement(ds, enc.study.results, ("z", "c"), rois=("early", "ventral"))
    fig = category_map(ds, agreement.winner, agreement.names, title=f"better predicted by ({subject})")
    print(agreement.report())

# %% [markdown]
# `z_c` against `z`: the paper finds their maps alike. The correlation over voxels of `z_c`'s map
# with `z`'s and with `c`'s, beside the `z − c` differences of section 3 that the summary quotes:

# %%
for name, value in enc.headline().items():
    glue(name, value, display=False)
enc.headline().round(3)

# %% [markdown]
# ## Summary
# | | Takagi & Nishimoto (NSD, SD 1.4) | this run |
# | --- | --- | --- |
# | `z` | best in early visual cortex | `z − c` in early cortex: {glue:text}`z_minus_c_early:+.3f` (section 3) |
# | `c` | best in higher (ventral) visual cortex, good over a wide area | `z − c` in ventral cortex: {glue:text}`z_minus_c_ventral:+.3f` |
# | `z_c` | like `z`, best in early visual cortex | maps correlate {glue:text}`zc_like_z:.2f` with `z`'s, {glue:text}`zc_like_c:.2f` with `c`'s |
#
# - Section 3 prints the verdict for every stream and for V1, V2 and V3. On the world `c`
#   out-predicts `z` in ventral cortex, as in the paper, and `z` out-predicts `c` in V2 and V3;
#   in V1 the verdict depends on the training set: with the world's default training set `c` is
#   ahead or tied.
# - Why, measured in chapter 14 (section 5): on the *noise-free* responses `z` predicts V1 better
#   than `c`, so the gap is not in what `z` carries. The world's images are drawn from a few
#   attributes (place, objects, colours, sizes), and those attributes alone predict much of the
#   contrast energy and colour in a V1 pRF {cite:p}`kay2013compressive`; `c` names them, so its V1-relevant
#   information is low-dimensional and a ridge learns it from few noisy images. `z`'s is spread
#   over many dimensions: cut both to the same number of principal components and `z` loses much
#   of its V1 accuracy while `c` keeps most of its own, so `c`'s extra dimensions are not what
#   beats `z`. With more training images `z` overtakes `c` in V1: chapter 14's learning curve
#   shows where, on the same test images. NSD gives each subject 8,859 training images, well past
#   that point.
# - The world's captions used to say which side of the image the main object was on; COCO's
#   captions rarely do, and that sentence let `c` predict where the edges were. They no longer
#   carry it (chapter 14 measures what it leaked).
# - `z_c` predicts like `z`, not like `c`, as in the paper: with the world's small U-Net and no
#   classifier-free guidance, img2img keeps most of the seen image's layout.
# - Against the truth (section 5), the winning feature matches the voxel's true tuning class
#   above chance; the errors are mostly low-level voxels won by `c`.
# - Cost: the encoding fits are kernel ridge regressions whose cost grows with the number of images,
#   not of feature dimensions; the img2img run that makes `z_c` and records the U-Net for chapters
#   11 and 12 is the slow step, done once and cached.
#
# ## What's next
# Chapter 10 varies how much noise img2img adds before denoising under `c`, and asks where on
# the cortex `z_c` overtakes `z`.

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
