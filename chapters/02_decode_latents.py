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
# Takagi & Nishimoto {cite:p}`takagi2023cvpr` need no new deep network to reconstruct images from
# the brain: two linear maps predict, from fMRI, the two inputs of a latent diffusion model
# {cite:p}`rombach2022ldm` — the image latent `z` (from **early** visual cortex) and the text
# conditioning `c` (from **higher**, ventral, visual cortex) — and the model does the rest.
#
# ## Overview
# 1. How well each ROI predicts `z` and `c` (ridge regression, Pearson r per dimension on the test set).
# 2. Three reconstructions of the test images: `X_z` (decoded `z` through the VAE decoder), `X_c`
#    (generated from decoded `c` alone) and `X_zc` (img2img: `X_z` noised to the sampler's
#    `strength` and denoised under decoded `c` with DDIM {cite:p}`song2021ddim`).
# 3. The same test images reconstructed from each subject.
#
# ## Prerequisites
# Chapter 1 (the data). On the world the models are the small ones shipped with this package
# (appendix); on NSD {cite:p}`allen2022nsd`, Stable Diffusion v1.4 from a local folder (README,
# "Running on NSD").

# %% tags=["parameters"]
dataset = "world"  # "world" or "nsd"
subject = "subj01"
subjects = ["subj01", "subj02", "subj05", "subj07"]  # shown side by side in section 3
dataset_options = {}  # passed to load_dataset
n_images = None  # reconstruct the first n test images (None: all)
n_shown = 6  # test images shown in the figures
sampler = {}  # overrides of brainldm.models.ldm.SamplerSettings, e.g. {"num_inference_steps": 4}
seed = 0
protocol = None  # "authors" (Takagi & Nishimoto's code) or "brainldm"; None: authors on NSD, ours on the world
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports and setup
# The dataset, the models and the sampler settings (on NSD, Takagi & Nishimoto's: DDIM 50 steps,
# strength 0.8, guidance 5, 5 samples per image; fewer steps and samples on the world).

# %%
from myst_nb import glue

from brainldm.book import open_chapter
from brainldm.data.datasets import load_dataset
from brainldm.figures import viz
from brainldm.fit.decoding import decoding_table
from brainldm.generate.reconstruction import SubjectReconstructions, brain_reconstructions

# %%
run = open_chapter(globals(), "reconstruction")
ds, models = run.ds, run.models

# %% [markdown]
# ## 1. Which voxels predict `z`, which predict `c`
# For each ROI, a ridge regression (one penalty per feature dimension, chosen by 5-fold
# cross-validation that keeps an image's repeats together {cite:p}`dupre2022himalaya`) is trained on
# single trials and tested on repeat-averaged responses to the shared test images. The paper decodes
# `z` from early and `c` from ventral cortex; the table shows how every stream does.

# %%
table = decoding_table(ds, models)
fig = viz.bars_by_roi(table, "mean_r", hue="feature", ylabel="mean r over dimensions (test)")
print(table.round(3).to_string(index=False))
best = table.loc[table.groupby("feature", sort=False)["mean_r"].idxmax()].set_index("feature")["roi"]
print("best ROI:", ", ".join(f"{feature} from {roi}" for feature, roi in best.items()))
for feature, roi in best.items():
    glue(f"best_{feature}", roi, display=False)

# %% [markdown]
# ## 2. Reconstructions
# `z` is decoded from `early` and `c` from `ventral` (Takagi's choice). Each test image gets
# several samples: the noise added before denoising differs between samples.

# %%
ids, recon, decoded = brain_reconstructions(ds, models, run.sampler, n_images, protocol=protocol)
fig = viz.reconstruction_grid(ds, ids, recon.panels(), n_shown)
for d in decoded.values():
    print(f"decoded {d.feature} from {d.n_voxels} {d.roi} voxels: {d.describe()}")

# %% [markdown]
# ## 3. Every subject
# The test images are shared, so each subject's brain gives its own reconstruction of the same
# picture (the paper's figure 4). Subjects differ in how noisy their responses are.

# %%
datasets = [load_dataset(dataset, subject=name, **dataset_options) for name in subjects]
others = SubjectReconstructions(datasets, models, run.sampler, n_images, protocol)
fig = viz.image_grid(others.panels(n_shown))

# %% [markdown]
# ## Summary
# - Linear maps from fMRI recover the latent diffusion model's inputs. In this run `z` is best
#   decoded from {glue:text}`best_z` and `c` from {glue:text}`best_c` (section 1); the paper decodes
#   `z` from early and `c` from ventral cortex.
# - `X_z` keeps the layout and colours of the scene but is blurry, `X_c` has the right kind of
#   content in the wrong place, and `X_zc` combines the two.
#
# ## What's next
# Chapter 3 scores these reconstructions: two-way identification in the feature spaces of
# several networks, for `z` only, `c` only and both, for every subject.

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
