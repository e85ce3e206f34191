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
# None of the published systems {cite:p}`takagi2023cvpr,takagi2023report,lu2023minddiffuser` can
# check its analyses against the truth: NSD's brains are real {cite:p}`allen2022nsd`. The world's
# subjects are simulated, so for every analysis of this book the right answer is known (chapter 1
# describes how the voxels are tuned). This chapter puts each analysis beside it.
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
sampler = {}  # overrides of brainldm.models.ldm.SamplerSettings (chapter 2's), e.g. {"num_inference_steps": 4}
diagnosis_sizes = [700, 1000, 2000, 4000]  # training images of section 5's learning curve (NSD: 8,859)
fdr = 0.05  # false discovery rate of the voxel-wise encoding tests (section 4)
seed = 0
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports and setup

# %%
from myst_nb import glue

from brainldm import figures
from brainldm.book import open_chapter
from brainldm.evaluate import truth
from brainldm.generate.oracle import reconstructions_against_oracle
from brainldm.fit.ldm_encoding import fit_ldm_encoders, stream_rois

# %%
run = open_chapter(globals(), "reconstruction")
ds, models = run.ds, run.models

# %% [markdown]
# ## 1. Noise ceilings
# The noise ceiling of a voxel is estimated from the spread of its responses over repeats of the
# same image (NSD's `ncsnr`). The simulation drew each voxel's true ncsnr, so the estimate can be
# checked voxel by voxel.

# %%
check = truth.noise_ceiling_check(ds)
ax = figures.identity_scatter(check.estimated, check.true, "true noise ceiling (%)", "estimated from repeats (%)", subject)
check.summary().round(3)

# %% [markdown]
# ## 2. Decoding against its oracle
# The paper decodes `z` from early and `c` from ventral cortex. In the world, early voxels are
# tuned to local contrast and colour (they carry `z`) and ventral voxels to categories and places
# (they carry `c`). The oracle fits the same ridge on noise-free responses; `fraction` is the share
# of the oracle's accuracy that the measured betas reach.

# %%
decoding = truth.decoding_against_oracle(ds, models, pairs=truth.DECODING_PAIRS)
ax = figures.oracle_bars(decoding)
decoding.set_index("pair")[["measured", "oracle", "fraction"]].round(3)

# %% [markdown]
# ## 3. Reconstructions against their oracle
# The test images are shared by every subject, and so is the oracle: one reconstruction of each
# test image from its own `z` and `c`, with the same sampler, settings and seeds. The oracle's
# `X_zc` is the best two-way identification this generative model can give with these settings;
# its `X_z` is the VAE's own reconstruction. Below the table, the share of the oracle's margin over
# chance that the brain's `X_zc` reaches (mean of subjects).

# %%
oracle = reconstructions_against_oracle(ds, models, subjects, run.sampler, n_images)
print(oracle.identification.round(3).to_string(na_rep="–"))
oracle.share().round(3)

# %%
fig = figures.image_grid(oracle.panels)

# %% [markdown]
# ## 4. Encoding against each voxel's true tuning
# Each simulated voxel's response mixes low-level drives (local contrast and colour in its
# receptive field), semantic drives (category and place) and spatial ones (position, depth,
# number); its *tuning class* is the largest. An encoding model of `z` (the image latent) stands
# for low-level tuning and one of `c` (the caption embedding) for semantic tuning. Among the voxels
# that one of the two predicts significantly (at the false discovery rate `fdr`, the rule every
# chapter uses), the winner should be the voxel's class.

# %%
encoders = fit_ldm_encoders(ds, models, ("z", "c"), fdr=fdr)
agreement = truth.tuning_agreement(ds, encoders.results, ("z", "c"), rois=stream_rois(ds))
print(agreement.report())

# %% [markdown]
# ## 5. Early visual cortex: what `z` and `c` carry, and how much data each needs
# The paper's first encoding result is that `z` predicts early visual cortex (V1–V3) best. On the
# world with chapter 9's default training set, `z` wins V2 and V3 but not V1. Four measurements
# say why:
# 1. **Noise-free responses**: encoding models fitted on the simulated responses without noise.
#    If `z` and `c` tie here, the gap in chapter 9 comes from the noise and the sample, not from
#    what the features carry.
# 2. **Equal feature counts**: `c` has many times `z`'s dimensions; both reduced to the same
#    number of principal components. If `c` won because it has more dimensions, it would lose here.
# 3. **Low-level drive**: early voxels respond to the oriented contrast energy in their pRF
#    {cite:p}`dumoulin2008prf` (the compressive model of {cite:t}`kay2013compressive`) and to its
#    colour (hue is decodable from V1–V4 voxels {cite:p}`brouwer2009color`). How well do
#    `z`, `c` and the scene attributes a caption can name predict that drive? Images of this world
#    are drawn from a few attributes (place, objects, colours, sizes, positions), so the attributes
#    alone predict much of it. The world's captions used to state where the main object was;
#    `c + position` adds that sentence back to measure what it leaked, and why the captions no
#    longer carry it.
# 4. **Training size**: `z − c` on the measured responses with more training images (the world
#    can render as many as asked; NSD has 8,859 per subject).

# %%
diagnosis = truth.early_cortex_diagnosis(ds, models, sizes=diagnosis_sizes, seed=seed)
print("noise-free responses, test r (ROI mean):", diagnosis.means("noise_free").round(3), sep="\n")
print("low-level drive in each voxel's pRF, test r (ROI mean):", diagnosis.means("low_level").round(3), sep="\n")

# %% [markdown]
# `z − c` on the measured responses as the training set grows, and where `z` overtakes `c` in V1:

# %%
ax = figures.ci_bars(diagnosis.by_training_size, x="roi", hue="n_train", ylabel="z − c (mean test r)")
print("z overtakes c in V1 from", diagnosis.crossover("V1") or "none of these sizes", "training images")
diagnosis.by_training_size.set_index(["n_train", "roi"]).round(3)

# %%
glue("nc_r", check.r, display=False)
glue("agreement", agreement.overall["fraction"], display=False)
glue("chance", agreement.overall["chance"], display=False)

# %% [markdown]
# ## Summary
# - The noise ceilings estimated from the repeats follow the simulated ones (section 1; r =
#   {glue:text}`nc_r:.3f` over voxels).
# - Decoding finds the feature–ROI pairing the simulation built in, and the oracle says how much
#   further more repeats could take each decoder (section 2).
# - The brain's reconstructions reach the share of the oracle's identification printed in
#   section 3: the rest is lost in decoding, not in the generative model.
# - The encoding winner (`z` or `c`) is the voxel's simulated tuning in a share
#   {glue:text}`agreement:.3f` of the scored voxels, beside {glue:text}`chance:.3f` by chance
#   (section 4). Within a stream, agreement equal to chance means that one feature wins the whole
#   stream: the maps then separate streams, not the voxels of mixed tuning inside a stream.
# - Section 5 separates what `z` and `c` carry about early cortex from how much data each needs:
#   `c`'s information about V1 is low-dimensional (a few scene attributes), so it is learned from
#   few images; `z`'s is spread over many dimensions and needs more. The learning curve shows
#   at which training size `z` overtakes `c` in V1; chapter 9 reports its verdict with this
#   reason.
#
# ## What's next
# The appendix describes the world models, trained by this project, that stand in for Stable
# Diffusion {cite:p}`rombach2022ldm`, CLIP {cite:p}`radford2021clip`, AlexNet
# {cite:p}`krizhevsky2012alexnet`, Inception {cite:p}`szegedy2016inception`, BLIP
# {cite:p}`li2022blip` and DPT {cite:p}`ranftl2021dpt`.

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
