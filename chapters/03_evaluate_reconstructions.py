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
# # 3. How good are the reconstructions?
#
# Takagi & Nishimoto {cite:p}`takagi2023cvpr` score a reconstruction by **two-way
# identification**: in the feature space of some network layer, is the reconstruction of image *i*
# more correlated with image *i* than the reconstructions of the other test images are? The
# fraction of wins is 0.5 at chance. Early layers measure low-level resemblance, late layers
# semantic resemblance; the paper's claim is that `z` alone gives low-level, `c` alone semantic,
# and `zc` both.
#
# ## Overview
# 1. Identification with early, middle and late layers of a CLIP-like {cite:p}`radford2021clip` and
#    a CNN {cite:p}`krizhevsky2012alexnet` network and with Inception {cite:p}`szegedy2016inception`,
#    for `z`-only, `c`-only and `zc` reconstructions, for every subject, with 95% bootstrap
#    confidence intervals over test images.
# 2. The paper's numbers beside ours (the technical report's Table 1 {cite:p}`takagi2023report`).
# 3. The standard suite of later papers (Brain-Diffuser {cite:p}`ozcelik2023braindiffuser`,
#    MindEye): PixCorr, SSIM {cite:p}`wang2004ssim`, AlexNet(2), AlexNet(5), Inception, CLIP, with
#    chance levels.
# 4. What the authors' protocol hides: the same decoded inputs, seeded and scored other ways.
# 5. On the world: identification within a place, which the captions name, and across places.
#
# ## Prerequisites
# Chapter 2 (its reconstructions are cached and reused here with the same settings).

# %% tags=["parameters"]
dataset = "world"
subjects = ["subj01", "subj02", "subj05", "subj07"]
dataset_options = {}
n_images = None  # None: every test image
sampler = {}  # overrides of brainldm.models.ldm.SamplerSettings, e.g. {"num_inference_steps": 4}
seed = 0
protocol = None  # "authors" (Takagi & Nishimoto's code) or "brainldm"; None: authors on NSD, ours on the world
effect_samples = 5  # samples per image in section 4 (the authors draw 5)
effect_images = 50  # test images in section 4 (None: all)
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports and setup
# Every subject's reconstructions (chapter 2's, from the cache) scored with every metric.

# %%
from myst_nb import glue

from brainldm.book import open_chapter
from brainldm.book.fidelity import protocol_effects
from brainldm.data.datasets import load_dataset
from brainldm.evaluate.metrics import IDENTIFICATION_COLUMNS, SUITE_METRICS, evaluate_subjects, missing_distances
from brainldm.evaluate.truth import identification_by_place
from brainldm.figures import ci_bars, paper_beside, table1
from brainldm.generate.reconstruction import SubjectReconstructions

# %%
run = open_chapter({**globals(), "subject": subjects[0]}, "reconstruction")
datasets = [load_dataset(dataset, subject=name, **dataset_options) for name in subjects]
recons = SubjectReconstructions(datasets, run.models, run.sampler, n_images, protocol)
scores = evaluate_subjects(run.models, recons)
print(f"{scores.describe()}; feature nets:", ", ".join(net.name for net in run.models.feature_nets.values()))

# %% [markdown]
# ## 1. Identification per layer, method and subject

# %%
print(scores.identification().round(3).to_string(na_rep="–"))
ax = ci_bars(scores.over_subjects(IDENTIFICATION_COLUMNS), x="metric", hue="method", chance=0.5,
             ylabel="two-way identification", title="mean over subjects; bars: 95% CI over test images")

# %% [markdown]
# ## 2. Beside the paper
# The paper's row is the report's "CVPR baseline" (`zc`, mean of the same four NSD subjects, with
# CLIP ViT-L/14, AlexNet and Inception-v3); ours is this run's `zc`, mean over subjects.

# %%
ours = scores.identification().loc["zc"].mean().rename("CVPR baseline")
beside = paper_beside(ours, table1().loc[["CVPR baseline"]], "this run (zc)", "Takagi & Nishimoto")

# %% [markdown]
# ## 3. The standard suite
# PixCorr and SSIM compare pixels (chance: a reconstruction paired with another test image);
# AlexNet(2), AlexNet(5), Inception and CLIP are two-way identifications (chance 0.5); EffNet-B1
# and SwAV are correlation distances of pooled features, lower is better (chance: paired with
# another image), computed on NSD when their weights are present. On the world the networks are
# the world models (appendix) standing in for AlexNet, Inception and CLIP; it has no analogue of
# the two distance networks.

# %%
print(*(f"{column} distance skipped: {reason}" for column, reason in missing_distances(run.models).items()), sep="\n")
print(scores.over_subjects(SUITE_METRICS).round(3).to_string(index=False, na_rep="–"))
print(scores.winners(SUITE_METRICS).round(3).to_string(na_rep="–"))

# %% [markdown]
# ## 4. What the protocol hides
# The same decoded `z` and `c` of the first subject, reconstructed with `effect_samples` samples per
# image twice: with independent noise for every (image, sample), and with the authors' seeding
# (every image's process starts from seed 42, so sample k starts from the same noise in every
# image). The first set is also scored by two other readings of "identification with 5 samples":
# wins counted per sample, and each image's best sample. The change is paired over images, with a
# 95% bootstrap CI.

# %%
effects = protocol_effects(run.ds, run.models, run.sampler.replace(n_samples=effect_samples), effect_images, protocol)
print(effects.describe(), effects.changes()[list(IDENTIFICATION_COLUMNS)].round(3).to_string(na_rep="–"), sep="\n")
shared = effects.shared_noise()
for key, value in shared.items():
    glue(f"shared_{key}", value, display=False)
print("shared noise changes identification by {low:+.3f} to {high:+.3f} ({above} of {n} CIs above 0)".format(**shared))

# %% [markdown]
# In this run the authors' seeding changes identification by {glue:text}`shared_low:+.3f` to
# {glue:text}`shared_high:+.3f`, with {glue:text}`shared_above` of {glue:text}`shared_n` columns'
# intervals above zero. Sharing the noise across images removes what the noise puts into each
# reconstruction from the comparison between images, so it can raise identification without any
# better decoding. Comparing numbers across papers therefore needs the seeding as well as the
# metric.
#
# ## 5. What the captions name (world only)
# On NSD a caption says little about what an early layer sees. The world's captions name the place,
# and the place sets most of the background, so a `c`-only reconstruction gets the background
# right with no low-level information from the brain. The world knows each test image's place, so
# identification can be split: against the test images of another place, and against those of
# the same place, where only what a reconstruction has of this image beyond its place counts.
# Below: `z`-only against `c`-only in each split, averaged over subjects, with paired 95% CIs over
# images.

# %%
if run.ds.has_ground_truth:
    print(identification_by_place(run.models, recons).describe())

# %% [markdown]
# ## Summary
# - The identification table above is this run's version of the paper's figure 5 and Table 1's
#   first row; the difference row says where this run and the paper part ways.
# - Which method wins each metric is printed in section 3: the paper reports that `z` alone wins
#   on low-level metrics and `c` alone on semantic ones, with `zc` close to the best of both.
# - On the world, section 5 separates the place the caption names from the rest of the image: an
#   early layer's score against other places is mostly the background.
#
# ## What's next
# Chapters 4–6 add decoded captions (`+T`), a structural prior (`+G`) and decoded depth (`+D`).

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
