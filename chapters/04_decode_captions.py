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
# # 4. `+T`: captions decoded from the brain
#
# Takagi & Nishimoto, *Improving visual image reconstruction from human brain activity using
# latent diffusion models via multiple decoded inputs* {cite:p}`takagi2023report`, section 2.1.
#
# The CVPR method {cite:p}`takagi2023cvpr` decodes the text conditioning `c` itself from fMRI, and
# the report notes that its reconstructions keep the right meaning but look blurred: the
# conditioning is "vulnerable to noise". Its first extension decodes something a captioner can read
# instead — the features BLIP's image encoder (a ViT) gives the seen image {cite:p}`li2022blip` —
# lets BLIP write a caption from the decoded features (beam search, 3 beams, 5–20 tokens,
# repetition penalty 1.5), and conditions the diffusion model {cite:p}`rombach2022ldm` on that
# caption. The report: captions "well represented the human visual experience", and `+T` raised
# every column of its Table 1, for every subject (its numbers are printed beside this run's in
# section 4).
#
# ## Overview
# 1. Decoding the captioner's features from the report's ROIs.
# 2. Decoded captions beside the true ones.
# 3. How good the captions are: identification and similarity in a sentence-embedding space, beside
#    the captions of the seen images themselves and chance; on the world, which attributes are right.
# 4. `+T` reconstructions against the baseline `X_zc`, with paired confidence intervals.
#
# ## Prerequisites
# Chapters 2 and 3 (the baseline and its scores). On the world the captioner is the world's
# template captioner with its own convolutional encoder (appendix); on NSD {cite:p}`allen2022nsd` it
# is BLIP (ViT-B, CapFilt-L), loaded on first use.

# %% tags=["parameters"]
dataset = "world"  # "world" or "nsd"
subject = "subj01"
dataset_options = {}  # passed to load_dataset
extension = {}  # overrides of brainldm.generate.extensions.ExtensionSettings, e.g. {"n_images": 10}
sampler = {}  # overrides of the extensions' brainldm.models.ldm.SamplerSettings, e.g. {"num_inference_steps": 4}
seed = 0
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu
n_shown = 6  # test images shown in the figures

# %% [markdown]
# ## Imports and setup
# The dataset, the models, and the extensions' settings: on NSD the report's (every test image, 5
# samples per image, Takagi & Nishimoto's sampler); on the world fewer images and one sample each.

# %%
from myst_nb import glue

from brainldm.book import open_chapter
from brainldm.figures import ci_bars, image_grid, paper_beside, table1_by_subject
from brainldm.generate.extensions import ExtensionRun, extension_settings

# %%
run = open_chapter(globals(), purpose=None)
study = ExtensionRun(run.ds, run.models, extension_settings(dataset, sampler, seed, **extension))
print(f"captioner: {study.caption_model.name}, features {study.caption_model.feature_shape}")
print(study.settings)

# %% [markdown]
# ## 1. Decoding what the captioner reads
# The report decodes BLIP's ViT features from six `streams` ROIs together (early, ventral,
# midventral, midlateral, lateral, parietal) with the ridge regression of chapter 2
# {cite:p}`dupre2022himalaya`. The caption, CNN (chapter 5) and depth (chapter 6) features are
# fitted in one regression (one penalty per feature, so this equals separate fits). On the world
# the fit uses repeat-averaged responses (the report: single trials), which is four times cheaper
# here and decodes as well. The table gives the mean test correlation over the features and the
# share of features above 0.

# %%
print(study.decoding("caption").round(3).to_string(index=False))

# %% [markdown]
# ## 2. Decoded captions
# For each test image: its first true caption, the caption the captioner writes from the seen image
# (the best `+T` could do with a perfect decoder), and the caption it writes from features decoded
# from the brain.

# %%
print(study.caption_table(n_shown).to_string(na_rep="–"))

# %% [markdown]
# ## 3. How good are the captions?
# Each caption and the image's true captions are embedded with the model set's text encoder (the
# world's MiniLM; CLIP's on NSD {cite:p}`radford2021clip`). **Identification**: is a decoded caption
# more correlated with its own image's true captions than the other images' decoded captions are
# (chance 0.5)? This is the report's check that decoded captions describe their image better than
# other images' captions do. **Cosine**: the mean cosine similarity to the true captions; chance
# pairs each caption with another image.

# %%
print(study.caption_quality().round(3).to_string(index=False))

# %% [markdown]
# On the world the captioner's attributes can be checked against the scene that was shown: the
# main object's category, colour, size and position, and the place. Chance is always guessing the
# most frequent value.

# %%
if run.ds.has_ground_truth:
    print(study.attribute_table().round(3).to_string(na_rep="–"))

# %% [markdown]
# ## 4. Reconstructing with the decoded caption
# `+T` keeps the baseline's `X_z` (the decoded `z`) and replaces the decoded `c` with the text
# encoder's embedding of the decoded caption. Both use the same noise for the same sample, so the
# difference below is the caption's doing. The columns above the images are the decoded captions.

# %%
compared = study.compare(("baseline", "+T"))
fig = image_grid(study.panels(compared.methods, n_shown), col_labels=study.captions[:n_shown])

# %% [markdown]
# Each column of Table 1 is a two-way identification in one layer of CLIP, AlexNet
# {cite:p}`krizhevsky2012alexnet` or Inception {cite:p}`szegedy2016inception`; the change is `+T`
# minus the baseline, image by image, with a 95% bootstrap CI over test images (`*`: the CI
# excludes 0). Below, the report's numbers for the same subject (NSD, BLIP, SD 1.4, 5 samples per
# image) beside this run's.

# %%
print(compared.changes_text())
ax = ci_bars(compared.changes, x="metric", hue="method", value="change", chance=0, ylabel="change in identification")
side = paper_beside(compared.means, compared.paper_rows(table1_by_subject()))
glue("t_changes", compared.summary("+T"), display=False)

# %% [markdown]
# ## Summary
# - Captions decoded from the report's ROIs describe their own image far better than chance
#   (section 3: identification and cosine similarity), as the report found, but less well than the
#   captions the captioner writes from the seen image. On the world, the attribute table shows what
#   decoding loses: which attributes survive and which fall to chance.
# - The report saw `+T` raise every Table 1 column for every subject. In this run, against the
#   baseline, `+T` {glue:text}`t_changes` (section 4). Where it does not raise a column, a reason the
#   world makes visible: its baseline `c` is already decoded well (chapter 2), a single template
#   caption conditions more sharply than the mean of five paraphrases, and a sharper condition pulls
#   img2img further from `X_z`'s layout. Chapter 7 gives all four subjects.
#
# ## What's next
# Chapter 5 replaces `X_z` with an image optimised to match decoded CNN features (`+G`).

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
