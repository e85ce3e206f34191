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
# The denoising U-Net is a stack of blocks that shrink the latent to a bottleneck and grow it
# back. Takagi & Nishimoto (CVPR 2023, figure 9) fit encoding models to the activations of each
# layer at early, middle and late stages of denoising. Early in denoising the **bottleneck**
# predicts best all over the cortex; as denoising proceeds, the **first and last** (outer) layers
# come to predict early visual cortex best while the bottleneck keeps the lead in higher visual
# cortex.
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
# space to a 4 × 4 grid (512 to 1,024 numbers per image on the world, 5,120 to 20,480 with
# SD 1.4), see `brainldm.features.unet`.

# %% tags=["parameters"]
dataset = "world"
subject = "subj01"
dataset_options = {}
n_train = None  # training images of the encoders; None: 700 on the world, all on NSD
strength = None  # img2img settings; None: brainldm.features.unet.ENCODING_SETTINGS (as chapter 9)
guidance_scale = None
num_inference_steps = None
n_boot = 500
fdr = 0.05
seed = 0
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from brainldm.figures import maps
from brainldm.data.anatomy import STREAMS
from brainldm.data.datasets import load_dataset
from brainldm.fit.encoding import best_feature, encoding_data, fit_encoders, roi_scores
from brainldm.features.unet import STAGES, encoding_settings_for, layer_depths, ldm_features
from brainldm.models.loading import describe_placement, load_models
from brainldm.book.run_record import show_provenance

# %%
ds = load_dataset(dataset, subject=subject, **dataset_options)
models = load_models(dataset, device=device, dtype=dtype)
print(describe_placement(models))
show_provenance(globals())
data = encoding_data(ds, n_train=n_train)
settings = encoding_settings_for(dataset, strength=strength, guidance_scale=guidance_scale,
                                 num_inference_steps=num_inference_steps)
rois = [name for name in STREAMS if name in ds.roi_names]
internal = ldm_features(ds, models, data.ids, layers="all", seed=seed, **settings)
layers = internal.layers
depth = layer_depths(layers)
print(ds)
print(f"{len(data.train_ids)} training and {len(data.test_ids)} test images; img2img {settings}")
print(f"stages (step index): {internal.stages}; timesteps {internal.timesteps.tolist()}")
print(pd.DataFrame({layer: {"pooled shape": internal.layer_shapes[(layer, internal.stages['late'])],
                            "depth": depth[layer]} for layer in layers}).T.to_string(na_rep="–"))

# %% [markdown]
# ## 1. One encoding model per layer and stage

# %%
features = {f"{layer} {stage}": internal.activation(layer, stage) for stage in STAGES for layer in layers}
results = fit_encoders(data, features, fdr=fdr, seed=seed)

# %% [markdown]
# ## 2. Accuracy per layer and stage
# ROI means of test r with 95 % bootstrap intervals, one panel per stage, layers from the input
# (left) through the bottleneck to the output (right).

# %%
scores = roi_scores(data, results, rois, ds, n_boot=n_boot, seed=seed)
table = scores.table()
table[["layer", "stage"]] = table["feature"].str.split(" ", expand=True)
fig, axes = plt.subplots(1, len(STAGES), figsize=(12, 3.4), sharey=True)
for ax, stage in zip(axes, STAGES):
    for roi, rows in table[table["stage"] == stage].groupby("roi", sort=False):
        rows = rows.set_index("layer").loc[list(layers)]
        line = ax.plot(range(len(layers)), rows["mean"], marker="o", label=roi)[0]
        ax.fill_between(range(len(layers)), rows["ci_low"], rows["ci_high"], color=line.get_color(), alpha=0.15)
    ax.set_xticks(range(len(layers)), layers, rotation=45)
    ax.set_title(f"{stage} stage (step {internal.stages[stage] + 1})")
axes[0].set_ylabel("mean test r")
axes[-1].legend(fontsize=7, ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
# The best layer of every ROI at every stage, and the accuracy of the outermost layers and of the
# bottleneck in early and ventral cortex:

# %%
best = table.loc[table.groupby(["stage", "roi"], sort=False)["mean"].idxmax(), ["stage", "roi", "layer"]]
print(best.pivot(index="roi", columns="stage", values="layer").loc[rois, list(STAGES)].to_string(na_rep="–"))
keep = [layer for layer in layers if depth[layer] in (0, max(depth.values()))]
focus = table[table["layer"].isin(keep) & table["roi"].isin(["early", "ventral"])]
print(focus.pivot(index=["roi", "layer"], columns="stage", values="mean")[list(STAGES)].round(3).to_string(na_rep="–"))

# %% [markdown]
# ## 3. The best layer of every voxel
# At each stage, the layer whose model predicts a voxel best (voxels no layer predicts
# significantly are left out).

# %%
winners = {}
for stage in STAGES:
    winners[stage], _ = best_feature(results, [f"{layer} {stage}" for layer in layers])
    fig = maps.category_map(ds, winners[stage], list(layers), title=f"best U-Net layer, {stage} stage ({subject})")
    plt.show()
print(pd.DataFrame({stage: [(w == k).mean() for k in range(len(layers))] for stage, w in winners.items()},
                   index=list(layers)).round(3).to_string(na_rep="–"))

# %% [markdown]
# ## 4. Against the simulated truth (world only)
# The paper reads its maps as outer layers ↔ low-level (early visual cortex) and the bottleneck
# ↔ semantic (higher visual cortex). In the world each voxel's true tuning is known: the table
# gives, per stage and true tuning class, the mean depth of the winning layer (0: outermost,
# the bottleneck is deepest) and the share of voxels won by an outer layer or by the bottleneck.

# %%
if hasattr(ds, "truth"):
    from brainldm.data.datasets.world.brain import TUNING_CLASSES

    tuning = np.array(TUNING_CLASSES)[ds.truth["tuning"]]
    depth_of = np.array([depth[layer] for layer in layers])
    rows = []
    for stage, w in winners.items():
        for cls in ("low-level", "semantic"):
            won = w[(tuning == cls) & (w >= 0)]
            rows.append({"stage": stage, "true tuning": cls, "voxels": won.size,
                         "mean depth": depth_of[won].mean(), "outer layer": (depth_of[won] == 0).mean(),
                         "bottleneck": (depth_of[won] == depth_of.max()).mean()})
    print(pd.DataFrame(rows).round(3).to_string(index=False))
else:
    print("no simulated truth on", ds.name)

# %% [markdown]
# ## Summary
# - Paper (NSD, SD 1.4, figure 9): early in denoising the bottleneck predicts best everywhere;
#   later the outer layers win early visual cortex and the bottleneck higher visual cortex.
# - This run (world, subj01): one layer, `up2` (the last block before the output block, at the
#   latent's full resolution), predicts best in almost every ROI at every stage, and the
#   bottleneck never leads. Part of the paper's pattern is there in weaker form: the input-side
#   outer layer (`down1`) is the worst layer at the first step, when it sees mostly noise, and
#   gains the most as denoising proceeds — more in early than in ventral cortex — so that at the
#   last step the layers are close and outer layers win a larger share of voxels. Against the
#   truth (section 4), voxels with low-level tuning are won by slightly shallower layers than
#   semantic ones at every stage, a small difference.
# - Differences from the paper's setting that matter here: the world U-Net has three levels and
#   64 channels at most (SD 1.4: four levels, 1,280 channels), its bottleneck is only 4 × 4, and
#   every block is pooled to 4 × 4, which hides the resolution advantage of outer layers.
#
# ## What's next
# Chapter 13 asks whether the test images were in the models' training set, and chapter 14 puts
# every analysis of the book beside the simulated truth.
