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
# # 2. Decoding `z` and `c`, and reconstructing what was seen
#
# Takagi & Nishimoto (CVPR 2023) need no new deep network to reconstruct images from the brain:
# two linear maps predict, from fMRI, the two inputs of a latent diffusion model — the image
# latent `z` (from **early** visual cortex) and the text conditioning `c` (from **higher**,
# ventral, visual cortex) — and the model does the rest.
#
# ## Overview
# 1. How well each ROI predicts `z` and `c` (ridge regression, Pearson r per dimension on the test set).
# 2. Three reconstructions of the test images: `X_z` (decoded `z` through the VAE decoder), `X_c`
#    (generated from decoded `c` alone) and `X_zc` (img2img: `X_z` noised to `strength` and
#    denoised under decoded `c`).
# 3. The same test images reconstructed from each subject.
#
# ## Prerequisites
# Chapter 1 (the data). On the world the models are the small ones shipped with this package
# (appendix); on NSD, Stable Diffusion v1.4 from a local folder (README, "Running on NSD").

# %% tags=["parameters"]
dataset = "world"  # "world" or "nsd"
subject = "subj01"
subjects = ["subj01", "subj02", "subj05", "subj07"]  # shown side by side in section 3
dataset_options = {}  # passed to load_dataset
n_images = None  # reconstruct the first n test images (None: all)
n_shown = 6  # test images shown in the figures
strength = None  # img2img settings; None: Takagi's on NSD (0.8, 5.0, 50 steps, 5 samples),
guidance_scale = None  # fewer steps and samples on the world (see brainldm.generate.reconstruction.SETTINGS)
num_inference_steps = None
n_samples = None
seed = 0
protocol = None  # "authors" (Takagi & Nishimoto's code) or "brainldm"; None: authors on NSD, ours on the world
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports

# %%
import matplotlib.pyplot as plt
import numpy as np

from brainldm.figures import viz
from brainldm.data.datasets import load_dataset
from brainldm.fit.decoding import decoding_table
from brainldm.models.loading import describe_placement, load_models
from brainldm.book.run_record import show_provenance
from brainldm.generate.reconstruction import brain_reconstructions, settings_for

# %%
ds = load_dataset(dataset, subject=subject, **dataset_options)
models = load_models(dataset, device=device, dtype=dtype)
print(describe_placement(models))
show_provenance(globals())
settings = settings_for(dataset, strength=strength, guidance_scale=guidance_scale,
                        num_inference_steps=num_inference_steps, n_samples=n_samples)
print(ds)
print(f"models: {models.name}; z {models.latent_shape()} at {models.resolution} px, c {models.c_shape()}")
print("reconstruction settings:", settings)

# %% [markdown]
# ## 1. Which voxels predict `z`, which predict `c`
# For each ROI, a ridge regression (one penalty per feature dimension, chosen by 5-fold
# cross-validation that keeps an image's repeats together) is trained on single trials and tested
# on repeat-averaged responses to the shared test images. The paper decodes `z` from early and
# `c` from ventral cortex; the table shows how every stream does.

# %%
table = decoding_table(ds, models)
fig, ax = plt.subplots(figsize=(8, 3))
for offset, (feature, rows) in zip((-0.2, 0.2), table.groupby("feature", sort=False)):
    ax.bar(np.arange(len(rows)) + offset, rows["mean_r"], 0.4, label=f"{feature}")
ax.set_xticks(np.arange(len(rows)), rows["roi"], rotation=30, ha="right")
ax.set_ylabel("mean r over dimensions (test)")
ax.set_title(f"decoding accuracy per ROI ({subject})")
ax.legend()
fig.tight_layout()
plt.show()
print(table.round(3).to_string(index=False))
scored = table.dropna(subset=["mean_r"])
best = scored.loc[scored.groupby("feature")["mean_r"].idxmax(), ["feature", "roi"]]
print("best ROI:", ", ".join(f"{f} from {r}" for f, r in best.itertuples(index=False)))

# %% [markdown]
# ## 2. Reconstructions
# `z` is decoded from `early` and `c` from `ventral` (Takagi's choice). Each test image gets
# several samples: the noise added before denoising differs between samples.

# %%
ids, recon, decoded = brain_reconstructions(ds, models, n_images=n_images, seed=seed, protocol=protocol, **settings)
shown = slice(n_shown)
rows = [ds.images(ids[shown]), recon["X_z"][shown], recon["X_c"][shown, 0]]
labels = ["seen", "X_z", "X_c"]
for k in range(recon["X_zc"].shape[1]):
    rows.append(recon["X_zc"][shown, k])
    labels.append(f"X_zc #{k + 1}")
fig = viz.image_grid(rows, row_labels=labels, col_labels=[caps[0] for caps in ds.captions(ids[shown])])
plt.show()
print(f"decoded z from {decoded['z'].n_voxels} early voxels: {decoded['z'].describe()}")
print(f"decoded c from {decoded['c'].n_voxels} ventral voxels: {decoded['c'].describe()}")

# %% [markdown]
# ## 3. Every subject
# The test images are shared, so each subject's brain gives its own reconstruction of the same
# picture (the paper's figure 4). Subjects differ in how noisy their responses are.

# %%
rows = [ds.images(ids[shown])]
for name in subjects:
    other = load_dataset(dataset, subject=name, **dataset_options)
    _, other_recon, _ = brain_reconstructions(other, models, n_images=n_images, seed=seed, protocol=protocol, **settings)
    rows.append(other_recon["X_zc"][shown, 0])
fig = viz.image_grid(rows, row_labels=["seen"] + [f"{name} X_zc" for name in subjects])
plt.show()

# %% [markdown]
# ## Summary
# - Linear maps from fMRI recover the latent diffusion model's inputs; where each is best
#   decoded from is printed above beside the paper's choice (`z` early, `c` ventral).
# - `X_z` keeps the layout and colours of the scene but is blurry, `X_c` has the right kind of
#   content in the wrong place, and `X_zc` combines the two.
#
# ## What's next
# Chapter 3 scores these reconstructions: two-way identification in the feature spaces of
# several networks, for `z` only, `c` only and both, for every subject.
