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
# # 6. `+D`: depth decoded from the brain
#
# Takagi & Nishimoto, technical report {cite:p}`takagi2023report`, section 2.3.
#
# Depth is represented in visual cortex (Lescroart & Gallant, 2019). The report's third extension
# decodes the representation a depth estimator (DPT-large {cite:p}`ranftl2021dpt`) gives the seen
# image, turns the decoded representation back into a depth map with DPT's own neck and head, and
# reconstructs with Stable Diffusion 2 depth {cite:p}`rombach2022ldm`, which takes a depth map
# beside the latent. The report: depth "improved the quantitative evaluation (CLIP(Late)) across
# subjects", made generations more stable when the depth was right, and hurt "when the depth
# estimation was wrong"; in its Table 1, `+T+G+D` is below `+T+G` in most other columns.
#
# ## Overview
# 1. Decoding the depth estimator's representation.
# 2. Decoded depth beside the true depth, with scores.
# 3. `+T+G+D` reconstructions against `+T+G` and the baseline.
#
# ## Prerequisites
# Chapters 4 and 5 (decoded captions and `+G` images, cached and reused). The world's U-Net has a
# depth input like SD 2 depth (it learned to work with and without it); on NSD
# {cite:p}`allen2022nsd`, SD 2 depth and DPT-large are loaded on first use.
#
# A note on conventions: the world's depth maps and estimator give *distance* (0 near), DPT and SD 2
# depth *inverse depth* (large near). Each decoded map is converted once, by
# `brainldm.features.depth.convert_depth`, into the convention of the model it conditions; the figures show
# every map as inverse depth (bright = near).

# %% tags=["parameters"]
dataset = "world"  # "world" or "nsd"
subject = "subj01"
dataset_options = {}  # passed to load_dataset
extension = {}  # overrides of brainldm.generate.extensions.ExtensionSettings, e.g. {"depth_grid": 16}
n_shown = 6  # test images shown in the figures
sampler = {}  # overrides of the extensions' brainldm.models.ldm.SamplerSettings, e.g. {"num_inference_steps": 4}
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu
seed = 0  # seeds the noise of every sample (the same for every method)

# %% [markdown]
# ## Imports and setup

# %%
from myst_nb import glue

from brainldm.book import open_chapter
from brainldm.figures import ci_bars, image_grid, paper_beside, table1_by_subject
from brainldm.generate.extensions import ExtensionRun, extension_settings

# %%
run = open_chapter(globals(), purpose=None)
study = ExtensionRun(run.ds, run.models, extension_settings(dataset, sampler, seed, **extension))
print(f"depth model: {study.depth_model.name} ({study.depth_model.convention}), representation "
      f"{study.depth_model.feature_shape}; depth-conditioned generator: {study.depth_generator.name}")
print(study.settings)

# %% [markdown]
# ## 1. Decoding the depth representation
# On NSD the representation is DPT's four backbone hidden states (the report's choice). The world's
# estimator is a small U-Net whose skip connections carry the image itself, so its compact
# representation is its output: the estimated map averaged on the latent grid.

# %%
print(study.decoding("depth").round(3).to_string(index=False))

# %% [markdown]
# ## 2. Decoded depth beside true depth
# "True" depth is the world's own depth map of the scene (on NSD, which has none, DPT's estimate
# of the seen image, as in the report). Beside it, the estimator's map of the seen image (what a
# perfect decoder would give) and the map decoded from fMRI. Depth maps of one world share a lot —
# the ground recedes towards the horizon — so each map's correlation with *another* image's true
# map (chance) is far above 0; two-way identification measures what is specific to each image.

# %%
fig = image_grid(study.depth_panels(n_shown), cmap="magma")
print(study.depth_quality().round(3).to_string(index=False))

# %% [markdown]
# ## 3. Reconstructing with decoded depth
# `+T+G+D` starts from the `+G` image with the decoded caption, like `+T+G`, and also gives the
# U-Net the decoded depth map (same noise for the same sample). The columns above the images are
# the decoded captions.

# %%
compared = study.compare(("baseline", "+T+G", "+T+G+D"))
fig = image_grid(study.panels(("+T+G", "+T+G+D"), n_shown), col_labels=study.captions[:n_shown])

# %% [markdown]
# `+T+G+D` against `+T+G` (the effect of depth alone), then both against the baseline, each with a
# 95% paired bootstrap CI over test images (`*`: the CI excludes 0), and the report's numbers for
# the same subject beside this run's.

# %%
print("against +T+G:", compared.changes_text("+T+G"), "against the baseline:", compared.changes_text(), sep="\n")
ax = ci_bars(compared.changes, x="metric", hue="method", value="change", chance=0, ylabel="change in identification")
side = paper_beside(compared.means, compared.paper_rows(table1_by_subject()))
glue("d_changes", compared.summary("+T+G+D", "+T+G"), display=False)

# %% [markdown]
# ## Summary
# - Decoded depth maps correlate with the true ones above the chance pairing and identify their
#   image among the others (section 2), beside what the estimator gives from the seen image.
# - The report found that depth raised CLIP late for every subject and lowered most other columns.
#   In this run, against `+T+G`, conditioning on decoded depth {glue:text}`d_changes` (section 3;
#   chapter 7 gives the mean over four subjects with CIs). The report's warning applies where a
#   wrong depth map misleads the generator; here the depth is decoded as section 2 shows.
#
# ## What's next
# Chapter 7 puts the baseline and the three extensions side by side for all four subjects: Table 1.

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
