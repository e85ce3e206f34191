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
# # 1. The data: stimuli, captions, cortex and noise
#
# Takagi & Nishimoto {cite:p}`takagi2023cvpr` reconstruct images from the
# [Natural Scenes Dataset](https://naturalscenesdataset.org) (NSD) {cite:p}`allen2022nsd`: eight
# people each saw up to 10,000 COCO images three times in a 7-tesla scanner; 1,000 images were shared
# by all. This chapter shows what one subject's data look like through the interface every
# later chapter uses, `brainldm.data.datasets.load_dataset`.
#
# ## Overview
# 1. The stimuli: images, their captions and depth maps.
# 2. The cortex: which voxels we use, on the flattened cortex {cite:p}`gao2015pycortex`, grouped into
#    NSD's `streams`.
# 3. The trials: how images repeat and how train and test are split.
# 4. Noise ceilings: how much of each voxel's response is explainable at all.
#
# ## Prerequisites
# Nothing but this book's package. By default the chapter runs on the embedded **world**: procedural
# scenes seen by simulated subjects whose voxels sit on pycortex's subject S1 and whose tuning is
# known (see the design notes in the README). With `dataset="nsd"` it reads a local NSD copy instead.

# %% tags=["parameters"]
dataset = "world"  # "world" (embedded) or "nsd" (a local NSD copy, see README)
subject = "subj01"  # subject shown in sections 1-3
subjects = ["subj01", "subj02", "subj05", "subj07"]  # subjects compared in section 4
dataset_options = {}  # e.g. {"n_train": 8859, "n_test": 982} for an NSD-sized world
n_examples = 8  # stimuli shown

# %% [markdown]
# ## Imports

# %%
from brainldm.book import open_chapter
from brainldm.data.noise import noise_ceiling_table
from brainldm.figures import bars_by_roi, stream_map
from brainldm.figures.describe import stimulus_grid, trial_order

# %%
ds = open_chapter(globals(), None, models=False).ds
counts = ds.trial_counts()
print(counts)

# %% [markdown]
# ## 1. Stimuli
# Each image comes with several captions (COCO has five per image; the world writes five
# paraphrases of the same scene). Takagi's `c` is the text embedding averaged over them. The world
# also knows the true depth of every pixel, shown below its images.

# %%
stimuli = ds.stimuli(ds.image_ids("test")[:n_examples])
stimulus_grid(stimuli)
print(stimuli.describe(3))

# %% [markdown]
# ## 2. The cortex
# NSD's `streams` atlas splits visual cortex into early (V1–V3 and hV4), three intermediate strips
# and the ventral, lateral and parietal streams. Takagi decodes `z` from **early** and `c` from
# **ventral** voxels. In the world, S1's drawn ROIs (white outlines) are grouped into the same seven
# labels; V4, LO and V3A/B, which S1 names but does not outline, are the cortex between V3 and
# the next area up.

# %%
stream_map(ds)
print(ds.roi_sizes().to_frame().T.to_string())

# %% [markdown]
# ## 3. Trials and repeats
# Every image is shown several times (three in NSD) in a shuffled order. Takagi trains the decoders on
# single trials and tests on responses averaged over an image's repeats, which is what
# `ds.betas(split, average=True)` returns. The repeats per image are printed above.

# %%
ax = trial_order(counts)

# %% [markdown]
# ## 4. Noise ceilings
# A voxel's noise ceiling is the share of its response variance that a perfect model could
# explain, given the trial-to-trial noise {cite:p}`allen2022nsd`:
# $NC = 100\,\frac{ncsnr^2}{ncsnr^2 + 1/n}$ for responses averaged over $n$ repeats, with
# $ncsnr = \sigma_{signal} / \sigma_{noise}$ estimated from the repeats. In the world we also know the
# true $ncsnr$ of every voxel (black ticks).

# %%
table = noise_ceiling_table([ds.with_subject(s) for s in subjects])
bars_by_roi(table, "median", "q25", "q75", reference="true_median" if ds.has_ground_truth else None,
            ylabel="noise ceiling (%), median and IQR")
print(table.round(1).to_string(index=False))

# %% [markdown]
# ## Summary
# - Each subject has single-trial responses of the voxels of visual cortex to training images
#   of their own and to test images shared by all subjects, each seen several times.
# - The `streams` labels give the ROIs of the decoding chapters: `early` for `z`, `ventral` for `c`.
# - Noise ceilings bound every accuracy in this book; in the world the estimate from repeats
#   recovers the simulated truth.
#
# ## What's next
# Chapter 2 fits linear maps from these voxels to the latent diffusion model's image latent `z`
# and text conditioning `c`, and reconstructs the test images from them.

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
