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
# Takagi & Nishimoto, technical report (2023), section 2.3.
#
# Depth is represented in visual cortex (Lescroart & Gallant, 2019). The report's third extension
# decodes the representation a depth estimator (DPT-large) gives the seen image, turns the decoded
# representation back into a depth map with DPT's own neck and head, and reconstructs with Stable
# Diffusion 2 depth, which takes a depth map beside the latent. The report: depth "improved the
# quantitative evaluation (CLIP(Late)) across subjects", made generations more stable when the depth
# was right, and hurt "when the depth estimation was wrong"; in its Table 1, `+T+G+D` is below
# `+T+G` in most other columns.
#
# ## Overview
# 1. Decoding the depth estimator's representation.
# 2. Decoded depth beside the true depth, with scores.
# 3. `+T+G+D` reconstructions against `+T+G` and the baseline.
#
# ## Prerequisites
# Chapters 4 and 5 (decoded captions and `+G` images, cached and reused). The world's U-Net has a
# depth input like SD 2 depth (it learned to work with and without it); on NSD, SD 2 depth and
# DPT-large are loaded on first use.
#
# A note on conventions: the world's depth maps and estimator give *distance* (0 near), DPT and SD 2
# depth *inverse depth* (large near). Each decoded map is converted once, by
# `brainldm.features.depth.convert_depth`, into the convention of the model it conditions; the figures show
# every map as inverse depth (bright = near).

# %% tags=["parameters"]
dataset = "world"  # "world" or "nsd"
subject = "subj01"
dataset_options = {}
n_images = None  # the first n test images; None: 50 on the world, all on NSD; 0: all
n_shown = 6
iterations = None  # +G Adam steps (chapter 5); None: 3 on the world, 200 on NSD
n_samples = None  # None: 1 on the world, 5 on NSD
baseline_samples = None  # samples of chapter 2's cached baseline; None: chapter 2's default
num_inference_steps = None
seed = 0
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from brainldm.figures import viz
from brainldm.data.datasets import load_dataset
from brainldm.features.depth import convert_depth, depth_generator, depth_scores, true_depth
from brainldm.evaluate.metrics import score_table
from brainldm.generate.extensions import ExtensionRun, format_changes, identification_table, paired_differences, plot_changes
from brainldm.models.loading import describe_placement, load_models
from brainldm.book.run_record import show_provenance
from brainldm.figures.reference import table1_by_subject

# %%
ds = load_dataset(dataset, subject=subject, **dataset_options)
models = load_models(dataset, device=device, dtype=dtype)
print(describe_placement(models))
show_provenance(globals())
run = ExtensionRun(ds, models, n_images=n_images, seed=seed, iterations=iterations, n_samples=n_samples,
                   baseline_samples=baseline_samples, num_inference_steps=num_inference_steps)
generator = depth_generator(models)
print(ds)
print(f"depth model: {run.depth_model.name} ({run.depth_model.convention}), representation "
      f"{run.depth_model.feature_shape}; depth-conditioned generator: {generator.name}")

# %% [markdown]
# ## 1. Decoding the depth representation
# On NSD the representation is DPT's four backbone hidden states (the report's choice). The world's
# estimator is a small U-Net whose skip connections carry the image itself, so its compact
# representation is its output: the estimated map averaged on the latent grid.

# %%
d = run.decoded["depth"]
print(f"{d.r.size} depth features from {d.n_voxels} voxels: mean r {np.nanmean(d.r):.3f} (test images)")

# %% [markdown]
# ## 2. Decoded depth beside true depth
# "True" depth is the world's own depth map of the scene (on NSD, which has none, DPT's estimate
# of the seen image, as in the report). Beside it, the estimator's map of the seen image (what a
# perfect decoder would give) and the map decoded from fMRI. Depth maps of one world share a lot —
# the ground recedes towards the horizon — so each map's correlation with *another* image's true
# map (chance) is far above 0; two-way identification measures what is specific to each image.

# %%
truth = true_depth(ds, run.depth_model, run.ids)
shown = slice(n_shown)
rows = [ds.images(run.ids[shown])] + [convert_depth(maps[shown], run.depth_model.convention, "disparity")
                                      for maps in (truth, run.seen_depth, run.depth)]
fig = viz.image_grid(rows, row_labels=["seen", "true depth", "estimator on seen", "decoded"], cmap="magma")
plt.show()

# %%
sources = {"decoded": run.depth, "estimator on seen": run.seen_depth}
tables = []
for name, maps in sources.items():
    scores = depth_scores(maps, truth)
    tables.append(score_table({"r": scores["r"], "identification": scores["identification"]},
                              {"r": scores["r chance"]}, depth=name))
print(pd.concat(tables, ignore_index=True).round(3).to_string(index=False))

# %% [markdown]
# ## 3. Reconstructing with decoded depth
# `+T+G+D` starts from the `+G` image with the decoded caption, like `+T+G`, and also gives the
# U-Net the decoded depth map (same noise for the same sample).

# %%
recons = {method: run.reconstruct(method) for method in ("baseline", "+T+G", "+T+G+D")}
rows = [ds.images(run.ids[shown]), recons["+T+G"][shown, 0], recons["+T+G+D"][shown, 0]]
fig = viz.image_grid(rows, row_labels=["seen", "+T+G X_zc", "+T+G+D X_zc"], col_labels=run.captions[shown])
plt.show()

# %%
table = identification_table(models, ds.images(run.ids), recons, subject=subject)
print("against +T+G:")
print(format_changes(paired_differences(table[table["method"] != "baseline"], baseline="+T+G"), subject).T
      .to_string(na_rep="–"))
changes = paired_differences(table)
print("against the baseline:")
print(format_changes(changes, subject).T.to_string(na_rep="–"))
fig = plot_changes(changes, subject)
plt.show()

# %%
paper = table1_by_subject().rename(index={"CVPR baseline": "baseline"})
ours = table.groupby(["method", "metric"], sort=False)["score"].mean().unstack()[paper.columns]
if subject in paper.index.get_level_values("subject"):
    side = pd.concat({"paper": paper.loc[subject].loc[["baseline", "+T+G", "+T+G+D"]], "this run": ours})
    print(side.round(3).to_string(na_rep="–"))

# %% [markdown]
# ## Summary
# - Decoded depth maps correlate with the true ones far above the chance pairing and identify their
#   image among the others (section 2), close to what the estimator gives from the seen image.
# - The report found that depth raised CLIP late for every subject and lowered most other columns.
#   On the world, conditioning on decoded depth raised the columns on average (section 3; chapter 7
#   gives the mean over four subjects with CIs) — depth here is decoded well, and the report's
#   warning applies to the opposite case, where a wrong depth map misleads the generator.
#
# ## What's next
# Chapter 7 puts the baseline and the three extensions side by side for all four subjects: Table 1.
