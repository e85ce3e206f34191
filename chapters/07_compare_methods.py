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
# # 7. Table 1: the baseline and three extensions, four subjects
#
# Takagi & Nishimoto, technical report {cite:p}`takagi2023report`, Table 1 and section 3.
#
# The report's summary of its extensions: they "generally improved accuracy over the baseline",
# but "each technique did not necessarily improve all measures for all subjects. The degree of
# improvement over the baseline varied from subject to subject and from measure to measure." This
# chapter rebuilds its Table 1 — two-way identification with early, middle and late layers of a
# CLIP-like {cite:p}`radford2021clip` and a CNN {cite:p}`krizhevsky2012alexnet` network and with
# Inception {cite:p}`szegedy2016inception` — for the baseline {cite:p}`takagi2023cvpr`, `+T`, `+T+G`
# and `+T+G+D`, and asks of each extension, with confidence intervals: did it change each column,
# on average over the four subjects and for each one?
#
# ## Overview
# 1. Table 1 per subject.
# 2. Mean ± s.d. over subjects, beside the report's.
# 3. Each extension against the baseline, with paired bootstrap CIs over test images.
# 4. What each step adds to the previous one.
#
# ## Prerequisites
# Chapters 4–6 (subj01's decoders, `+G` images and reconstructions are cached and reused; this
# chapter computes the other subjects').

# %% tags=["parameters"]
dataset = "world"  # "world" or "nsd"
subjects = ["subj01", "subj02", "subj05", "subj07"]
dataset_options = {}
sampler = {}  # overrides of brainldm.models.ldm.SamplerSettings, e.g. {"num_inference_steps": 4}
extension = {}  # overrides of brainldm.generate.extensions.ExtensionSettings, e.g. {"n_images": 10}
seed = 0
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports and setup
# Every method for every subject: each subject's run reconstructs the test images with all four
# methods (the same noise for the same sample) and scores them.

# %%
from myst_nb import glue

from brainldm.book import open_chapter
from brainldm.data.datasets import load_dataset
from brainldm.evaluate.paired import format_changes
from brainldm.figures import ci_bars, paper_beside, table1
from brainldm.generate.extensions import extension_settings
from brainldm.generate.table1 import compare_subjects, step_differences

# %%
run = open_chapter({**globals(), "subject": subjects[0]}, purpose=None)
settings = extension_settings(dataset, sampler, seed, **extension)
results = compare_subjects([load_dataset(dataset, subject=s, **dataset_options) for s in subjects], run.models, settings)
print(results.describe())

# %% [markdown]
# ## 1. Table 1 per subject
# Mean two-way identification over test images (chance 0.5). All methods share each subject's test
# responses and, sample for sample, the same noise.

# %%
per_subject, across = results.summary()
print(per_subject.round(3).to_string(na_rep="–"))

# %% [markdown]
# ## 2. Mean ± s.d. over subjects, beside the report
# The report's numbers come from NSD with CLIP ViT-L/14, AlexNet and Inception-v3, 5 samples per
# image; on the world the networks are the world's image encoder and CNN and its Inception
# analogue (appendix).

# %%
print(across.round(3).to_string(na_rep="–"))
paper = table1().rename(index={"CVPR baseline": "baseline"})
beside = paper_beside(results.means(), paper)

# %% [markdown]
# ## 3. Each extension against the baseline
# For every subject and test image, the method's score minus the baseline's (same image, same noise);
# for the mean over subjects these differences are averaged over subjects first (the test images are
# shared). The CIs are 95% bootstrap intervals over test images; `*` marks an interval that excludes 0.

# %%
changes = results.changes()
print(format_changes(changes).to_string(na_rep="–"))
ax = ci_bars(changes[changes["subject"] == "mean"], x="metric", hue="method", value="change", chance=0.0,
             ylabel="change in identification", title="against the baseline, mean over subjects (95% CI)")

# %% [markdown]
# How many of the seven columns each extension raised or lowered (CI excluding 0), on the mean over
# subjects and for each subject, then each subject's changes:

# %%
counts = results.consistency(changes)
print(counts.unstack("method").to_string())
for method, row in results.consistency(changes, subject="mean").iterrows():
    glue(f"{method.replace('+', '')}_raised", int(row["raised"]), display=False)
    glue(f"{method.replace('+', '')}_lowered", int(row["lowered"]), display=False)
for name in subjects:
    print(f"\n{name}:\n{format_changes(changes, name).to_string(na_rep='–')}")

# %% [markdown]
# ## 4. What each step adds
# `+G` measured against `+T`, and `+D` against `+T+G` (mean over subjects), then the same
# differences of means beside the report's.

# %%
print(format_changes(results.steps()).to_string(na_rep="–"))
steps = paper_beside(step_differences(results.means()), step_differences(paper))

# %% [markdown]
# ## Summary
# - On the mean over subjects, `+T` raised {glue:text}`T_raised` and lowered {glue:text}`T_lowered`
#   of the seven columns beyond their CIs, `+T+G` raised {glue:text}`TG_raised` and lowered
#   {glue:text}`TG_lowered`, and `+T+G+D` raised {glue:text}`TGD_raised` and lowered
#   {glue:text}`TGD_lowered`. The counts per subject in
#   section 3 say how consistent each change is across subjects: the report's own caveat, that gains
#   "varied from subject to subject and from measure to measure", made quantitative.
# - Section 4 sets each step's gain beside the report's: in the report `+G` added to `+T` in most
#   columns and `+D` lowered most columns but CLIP late.
# - Other differences from the report's numbers (section 2): the world's much smaller networks,
#   images and models, repeat-averaged decoders, and the fewer test images, samples and sampling
#   steps printed at the top.
#
# ## What's next
# Chapter 8 refines the reconstruction with MindDiffuser's second stage {cite:p}`lu2023minddiffuser`.

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
