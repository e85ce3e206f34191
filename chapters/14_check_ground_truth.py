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
# # 14. Does every analysis recover the simulated brain?
#
# None of the published systems can check its analyses against the truth: NSD's brains are real.
# The world's subjects are simulated, so for every analysis of this book the right answer is known
# (chapter 1 describes how the voxels are tuned). This chapter puts each analysis beside it.
#
# ## Overview
# 1. **Noise ceilings**: the ceiling estimated from repeats against the simulated signal-to-noise.
# 2. **Decoding**: each decoder against an oracle that decodes the same feature from the same
#    ROI's *noise-free* responses — how much of what the ROI's tuning allows is reached.
# 3. **Reconstruction**: identification of the brain's reconstructions against an oracle that
#    reconstructs from the test images' *true* `z` and `c` (a decoder with r = 1).
# 4. **Encoding**: does the feature that best predicts a voxel match the voxel's true tuning?
# 5. **Early visual cortex**: why `z` does or does not predict V1–V3 better than `c` here, as the
#    paper finds on NSD (chapter 9).
#
# ## Prerequisites
# Chapters 1–3 and 9 (their cached decoders, reconstructions and encoding models are reused).
# World only: on NSD the truth is unknown.

# %% tags=["parameters"]
subject = "subj01"  # decoding and encoding are checked on this subject
subjects = ["subj01", "subj02", "subj05", "subj07"]  # reconstructions are checked on these
dataset_options = {}
n_images = None  # None: every test image
strength = None  # None: the settings of chapter 2 (brainldm.generate.reconstruction.SETTINGS)
guidance_scale = None
num_inference_steps = None
n_samples = None
diagnosis_sizes = [700, 1000, 2000, 4000]  # training images of section 5's learning curve (NSD: 8,859)
seed = 0
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from brainldm.data import noise as stats
from brainldm.figures import viz
from brainldm.data.datasets import load_dataset
from brainldm.fit.encoding import TUNING_OF_FEATURE, truth_agreement, voxel_scores
from brainldm.evaluate.metrics import IDENTIFICATION_COLUMNS, evaluate_reconstructions
from brainldm.models.loading import describe_placement, load_models
from brainldm.book.run_record import show_provenance
from brainldm.generate.reconstruction import brain_reconstructions, settings_for
from brainldm.evaluate.truth import decoding_against_oracle, early_cortex_diagnosis, oracle_reconstructions

# %%
ds = load_dataset("world", subject=subject, **dataset_options)
models = load_models("world", device=device, dtype=dtype)
print(describe_placement(models))
show_provenance(globals())
settings = settings_for("world", strength=strength, guidance_scale=guidance_scale,
                        num_inference_steps=num_inference_steps, n_samples=n_samples)
print(ds)

# %% [markdown]
# ## 1. Noise ceilings
# The noise ceiling of a voxel is estimated from the spread of its responses over repeats of the
# same image (NSD's `ncsnr`). The simulation drew each voxel's true ncsnr, so the estimate can be
# checked voxel by voxel.

# %%
n_average = np.unique(ds.betas("test")[1], return_counts=True)[1].mean()
estimated = ds.noise_ceiling("test")
true = stats.noise_ceiling(ds.truth["ncsnr"], n_average)
r = np.corrcoef(estimated, true)[0, 1]
fig, ax = plt.subplots(figsize=(3.6, 3.4))
ax.scatter(true, estimated, s=2, alpha=0.4)
ax.plot([0, 100], [0, 100], "k--", lw=0.8)
ax.set_xlabel("true noise ceiling (%)")
ax.set_ylabel("estimated from repeats (%)")
ax.set_title(f"{subject}: r = {r:.2f}")
fig.tight_layout()
plt.show()
print(f"noise ceiling, estimated vs true: r = {r:.3f}; median {np.median(estimated):.1f}% "
      f"(true {np.median(true):.1f}%) over {estimated.size} voxels")

# %% [markdown]
# ## 2. Decoding against its oracle
# The paper decodes `z` from early and `c` from ventral cortex. In the world, early voxels are
# tuned to local contrast and colour (they carry `z`) and ventral voxels to categories and places
# (they carry `c`). The oracle fits the same ridge on noise-free responses; `fraction` is the share
# of the oracle's accuracy that the measured betas reach.

# %%
pairs = [("z", "early"), ("z", "ventral"), ("c", "ventral"), ("c", "early")]
decoding = decoding_against_oracle(ds, models, pairs)
print(decoding.round(3).to_string(index=False))
fig, ax = plt.subplots(figsize=(6, 2.8))
x = np.arange(len(decoding))
ax.bar(x - 0.2, decoding["oracle"], 0.4, label="oracle (noise-free)")
ax.bar(x + 0.2, decoding["measured"], 0.4, label="measured betas")
ax.set_xticks(x, [f"{f} from {r}" for f, r in pairs])
ax.set_ylabel("mean r over dimensions (test)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
right = decoding.set_index(["feature", "roi"])["measured"]
print(f"z decoded better from early than ventral: {bool(right['z', 'early'] > right['z', 'ventral'])}; "
      f"c decoded better from ventral than early: {bool(right['c', 'ventral'] > right['c', 'early'])}")

# %% [markdown]
# ## 3. Reconstructions against their oracle
# The test images are shared by every subject, and so is the oracle: one reconstruction of each
# test image from its own `z` and `c`, with the same sampler, settings and seeds. The oracle's
# `X_zc` is the best two-way identification this generative model can give at this strength; its
# `X_z` is the VAE's own reconstruction.

# %%
oracle_ids, oracle = oracle_reconstructions(ds, models, n_images=n_images, seed=seed, **settings)
tables = [evaluate_reconstructions(models, ds.images(oracle_ids), oracle, methods={"z-only": "X_z", "zc": "X_zc"},
                                   subject="oracle")]
for name in subjects:
    other = load_dataset("world", subject=name, **dataset_options)
    ids, recon, _ = brain_reconstructions(other, models, n_images=n_images, seed=seed, **settings)
    tables.append(evaluate_reconstructions(models, other.images(ids), recon, methods={"zc": "X_zc"},
                                           subject=name))
scores = pd.concat(tables, ignore_index=True)
columns = list(IDENTIFICATION_COLUMNS)
ident = scores[scores["metric"].isin(columns)]
wide = ident.pivot_table(index=["subject", "method"], columns="metric", values="mean", sort=False)[columns]
print(wide.round(3).to_string(na_rep="–"))
brain_mean = wide.xs("zc", level="method").drop(index="oracle").mean()
share = (brain_mean - 0.5) / (wide.loc[("oracle", "zc")] - 0.5)
print("share of the oracle's margin over chance that the brain's X_zc reaches (mean of subjects):")
print(share.round(3).to_string(na_rep="–"))

# %%
shown = slice(6)
fig_rows = [ds.images(oracle_ids[shown]), oracle["X_z"][shown], oracle["X_zc"][shown, 0]]
labels = ["seen", "oracle X_z", "oracle X_zc"]
_, first, _ = brain_reconstructions(ds, models, n_images=n_images, seed=seed, **settings)
fig_rows.append(first["X_zc"][shown, 0])
labels.append(f"{subject} X_zc")
viz.image_grid(fig_rows, row_labels=labels)
plt.show()

# %% [markdown]
# ## 4. Encoding against each voxel's true tuning
# Each simulated voxel's response mixes low-level drives (local contrast and colour in its
# receptive field), semantic drives (category and place) and spatial ones (position, depth,
# number); its *tuning class* is the largest. An encoding model of `z` (the image latent) stands
# for low-level tuning and one of `c` (the caption embedding) for semantic tuning. Among the voxels
# that one of the two predicts significantly (FDR 5%), the winner should be the voxel's class.

# %%
voxels = voxel_scores(ds, models, features=("z", "c"))
winner = np.where(voxels["q_z"].lt(0.05) | voxels["q_c"].lt(0.05),
                  (voxels["r_c"] > voxels["r_z"]).astype(int), -1)
agreement = truth_agreement(ds, winner, [TUNING_OF_FEATURE["z"], TUNING_OF_FEATURE["c"]])
print(f"winner matches the true tuning in {agreement['fraction']:.1%} of {agreement['n']} voxels "
      f"(chance {agreement['chance']:.1%})")
print(agreement["confusion"].to_string(na_rep="–"))
rows = []
for stream in ["early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal"]:
    mask = (voxels["stream"] == stream).to_numpy()
    part = truth_agreement(ds, winner, [TUNING_OF_FEATURE["z"], TUNING_OF_FEATURE["c"]], voxels=mask)
    rows.append({"stream": stream, "voxels scored": part["n"], "agreement": part["fraction"],
                 "chance": part["chance"]})
print(pd.DataFrame(rows).round(3).to_string(index=False))

# %% [markdown]
# ## 5. Early visual cortex: what `z` and `c` carry, and how much data each needs
# The paper's first encoding result is that `z` predicts early visual cortex (V1–V3) best. On the
# world with chapter 9's 700 training images, `z` wins V2 and V3 but not V1. Four measurements say
# why:
# 1. **Noise-free responses**: encoding models fitted on the simulated responses without noise.
#    If `z` and `c` tie here, the gap in chapter 9 comes from the noise and the sample, not from
#    what the features carry.
# 2. **Equal feature counts**: `c` has twelve times `z`'s dimensions; both reduced to the same
#    number of principal components. If `c` won because it has more dimensions, it would lose here.
# 3. **Contrast energy**: early voxels respond to the oriented contrast energy in their pRF
#    (the compressive model of Kay et al. 2013). How well do `z`, `c` and the scene attributes a
#    caption can name predict that drive? Images of this world are drawn from a few attributes
#    (place, objects, colours, sizes, positions), so the attributes alone predict much of it.
#    The world's captions used to state where the main object was; `c + position` adds that
#    sentence back to measure what it leaked, and why the captions no longer carry it.
# 4. **Training size**: `z − c` on the measured responses with more training images (the world
#    can render as many as asked; NSD has 8,859 per subject).

# %%
diagnosis = early_cortex_diagnosis(ds, models, sizes=diagnosis_sizes, seed=seed)
noise_free = diagnosis.noise_free.pivot(index="feature", columns="roi", values="mean")
print("noise-free responses, test r (ROI mean):")
print(noise_free.round(3).to_string())
print("\ncontrast energy in each voxel's pRF, test r (ROI mean):")
print(diagnosis.contrast_energy.pivot(index="feature", columns="roi", values="mean").round(3).to_string())

# %%
curve = diagnosis.by_training_size
fig = viz.bars_by_roi(curve.assign(n_train=curve["n_train"].astype(str)), "mean", "ci_low", "ci_high",
                      hue="n_train", ylabel="z − c (mean test r)")
for _, row in curve.iterrows():
    print(f"{row['n_train']:>5} training images, {row['roi']:>7}: z {row['z']:.3f}, c {row['c']:.3f}, "
          f"z - c = {row['mean']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]  {row['verdict']}")
print("z overtakes c in V1 from", diagnosis.crossover("V1") or "none of these sizes", "training images")

# %% [markdown]
# ## Summary
# - The noise ceilings estimated from three repeats follow the simulated ones (section 1).
# - Decoding finds the feature–ROI pairing the simulation built in, and the oracle says how much
#   further more repeats could take each decoder (section 2).
# - The brain's reconstructions reach the share of the oracle's identification printed in
#   section 3: the rest is lost in decoding, not in the generative model.
# - Section 4 prints how often the encoding winner (`z` or `c`) is the voxel's simulated tuning,
#   beside the agreement expected by chance. Within a stream, agreement equal to chance means
#   that one feature wins the whole stream: the maps then separate streams, not the voxels of
#   mixed tuning inside a stream.
# - Section 5 separates what `z` and `c` carry about early cortex from how much data each needs:
#   `c`'s information about V1 is low-dimensional (a few scene attributes), so it is learned from
#   few images; `z`'s is spread over many dimensions and needs more. The learning curve shows
#   at which training size `z` overtakes `c` in V1; chapter 9 reports its verdict with this
#   reason.
#
# ## What's next
# The appendix describes the world models, trained by this project, that stand in for Stable
# Diffusion, CLIP, AlexNet, Inception, BLIP and DPT.
