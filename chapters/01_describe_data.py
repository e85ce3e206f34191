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
# Takagi & Nishimoto (CVPR 2023) reconstruct images from the
# [Natural Scenes Dataset](https://naturalscenesdataset.org) (NSD; Allen et al. 2022): eight people
# each saw up to 10,000 COCO images three times in a 7-tesla scanner; 1,000 images were shared
# by all. This chapter shows what one subject's data look like through the interface every
# later chapter uses, `brainldm.data.datasets.load_dataset`.
#
# ## Overview
# 1. The stimuli: images, their captions and depth maps.
# 2. The cortex: which voxels we use, on the flattened cortex, grouped into NSD's `streams`.
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
import matplotlib.pyplot as plt
import numpy as np

from brainldm.figures import viz
from brainldm.data.datasets import load_dataset
from brainldm.book.run_record import show_provenance
from brainldm.data.noise import noise_ceiling_table

# %%
ds = load_dataset(dataset, subject=subject, **dataset_options)
show_provenance(globals())
train, train_ids = ds.betas("train")
test, test_ids = ds.betas("test")
print(ds)
print(f"train: {train.shape[0]} trials of {np.unique(train_ids).size} images")
print(f"test:  {test.shape[0]} trials of {np.unique(test_ids).size} images (shared by all subjects)")

# %% [markdown]
# ## 1. Stimuli
# Each image comes with several captions (COCO has five per image; the world writes five
# paraphrases of the same scene). Takagi's `c` is the text embedding averaged over them.

# %%
examples = np.unique(test_ids)[:n_examples]
captions = ds.captions(examples)
rows, labels = [ds.images(examples)], ["image"]
if hasattr(ds, "depth"):  # the world knows the true depth of every pixel
    rows.append(ds.depth(examples))
    labels.append("depth (dark = near)")
fig = viz.image_grid(rows, row_labels=labels, col_labels=[c[0] for c in captions], cmap="gray")
plt.show()
for image_id, caps in zip(examples[:3], captions[:3]):
    print(f"image {image_id}:")
    for caption in caps:
        print(f"    {caption}")

# %% [markdown]
# ## 2. The cortex
# NSD's `streams` atlas splits visual cortex into early (V1–V3 and hV4), three intermediate strips
# and the ventral, lateral and parietal streams. Takagi decodes `z` from **early** and `c` from
# **ventral** voxels. In the world, S1's drawn ROIs (white outlines) are grouped into the same seven
# labels; V4, LO and V3A/B, which S1 names but does not outline, are the cortex between V3 and
# the next area up.

# %%
fig = viz.stream_map(ds)
plt.show()
counts = {roi: int(ds.roi_mask(roi).sum()) for roi in ds.roi_names}
print("voxels per ROI:", ", ".join(f"{roi} {n}" for roi, n in counts.items()))

# %% [markdown]
# ## 3. Trials and repeats
# Every image is shown three times in a shuffled order. Takagi trains the decoders on single
# trials and tests on responses averaged over an image's repeats, which is what
# `ds.betas(split, average=True)` returns.

# %%
repeats = np.unique(train_ids, return_counts=True)[1]
print(f"repeats per training image: {np.bincount(repeats)[1:].tolist()} (count of images seen 1, 2, 3... times)")
fig, ax = plt.subplots(figsize=(8, 2.2))
order = np.unique(test_ids, return_inverse=True)[1]
ax.plot(order[:300], ".", ms=3)
ax.set_xlabel("test trial")
ax.set_ylabel("test image (index)")
ax.set_title("the first 300 test trials: each image comes back three times, at random")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Noise ceilings
# A voxel's noise ceiling is the share of its response variance that a perfect model could
# explain, given the trial-to-trial noise (Allen et al. 2022):
# $NC = 100\,\frac{ncsnr^2}{ncsnr^2 + 1/n}$ for responses averaged over $n$ repeats, with
# $ncsnr = \sigma_{signal} / \sigma_{noise}$ estimated from the repeats. In the world we also know the
# true $ncsnr$ of every voxel (black ticks).

# %%
streams = ["early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"]
table = noise_ceiling_table([load_dataset(dataset, subject=s, **dataset_options) for s in subjects], streams)
truth = "true_median" if "true_median" in table else None
fig = viz.bars_by_roi(table, "median", "q25", "q75", reference=truth,
                      ylabel="noise ceiling (%), median and IQR")
plt.show()
print(table.round(1).to_string(index=False))

# %% [markdown]
# ## Summary
# - Each subject has single-trial responses of the voxels of visual cortex to training images
#   of their own and to test images shared by all subjects, each seen three times.
# - The `streams` labels give the ROIs of the decoding chapters: `early` for `z`, `ventral` for `c`.
# - Noise ceilings bound every accuracy in this book; in the world the estimate from repeats
#   recovers the simulated truth.
#
# ## What's next
# Chapter 2 fits linear maps from these voxels to the latent diffusion model's image latent `z`
# and text conditioning `c`, and reconstructs the test images from them.
