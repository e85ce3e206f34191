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
# # 13. Had the model seen the test images? The training-set overlap control
#
# Takagi & Nishimoto's technical report {cite:p}`takagi2023report`, section 2.4: after the CVPR
# paper {cite:p}`takagi2023cvpr`, they noticed that about **7%** of NSD's {cite:p}`allen2022nsd` test
# images are also in LAION-5B, on which Stable Diffusion v1.4 {cite:p}`rombach2022ldm` was trained. A
# reconstruction could look right because the generative model had seen the very image. They
# re-scored without the overlapping images and found **no change** (identification with
# Inception-v3 {cite:p}`szegedy2016inception`: 74.3 ± 1.7% before, 74.3 ± 1.6% after; the same with
# CLIP and AlexNet).
#
# The world makes this control checkable: its models were trained on a pool of world images into
# which a share of the test images like LAION's of NSD's was deliberately leaked (the appendix on the
# world models says how many), so the answer is known.
#
# ## Overview
# 1. A near-duplicate detector: the cosine of image-encoder embeddings and the Hamming distance of
#    DCT perceptual hashes, each with a threshold.
# 2. Its precision and recall on the world's known leaked images, searching the pool as the exact
#    images the models were trained on and as "web copies" (cropped, resized, JPEG re-encoded), as a
#    search of LAION would face; how the thresholds trade one for the other.
# 3. What it finds and what it misses.
# 4. Re-scoring the reconstructions of every subject with and without the overlapping images.
# 5. On NSD: the authors' published list, and why the detector cannot be run against LAION here.
#
# ## Prerequisites
# Chapters 2 and 3 (the `X_zc` reconstructions and their scores, cached and reused here).

# %% tags=["parameters"]
dataset = "world"
subjects = ["subj01", "subj02", "subj05", "subj07"]
dataset_options = {}
cosine_threshold = 0.95  # a near duplicate has an embedding cosine of at least this
hamming_threshold = 8  # and perceptual hashes at most this many bits (of 64) apart
rule = "both"  # "both", "either", "embedding" or "phash"
n_search = None  # world: search the first n test ids for leaks (None: NSD's 982, among which leaks are drawn)
n_fresh = None  # world: search the first n fresh images of the pool (None: all of them) and every leaked one
overlap_ids = None  # NSD: a text/CSV file of overlapping image ids (the authors published theirs)
overlap_id_kind = "nsd"  # "nsd" (0-based 73k ids), "nsd1" (1-based 73KID) or "coco"
pool_images = None  # a folder, .npy or .npz of the generative model's training images, if you have them
n_examples = 6
sampler = {}  # overrides of brainldm.models.ldm.SamplerSettings, e.g. {"num_inference_steps": 4}
seed = 0
device = None  # torch device, e.g. "cuda:1"; None: BRAINLDM_DEVICE, else cuda if present, else cpu
dtype = None  # "float16", "bfloat16", "float32"; None: BRAINLDM_DTYPE, else float16 on cuda, float32 on cpu

# %% [markdown]
# ## Imports

# %%
from brainldm.book import open_chapter
from brainldm.figures import ci_bars, paper_beside
from brainldm.figures.overlap import leak_examples, precision_recall_lines, similarity_scatter
from brainldm.generate import overlap

# %%
run = open_chapter({**globals(), "subject": subjects[0]}, "reconstruction")
search = overlap.NearDuplicateSearch(cosine_threshold, hamming_threshold, rule)

# %% [markdown]
# ## 1. Two signatures of an image
# The **embedding** is the image encoder's (CLIP ViT-L/14 {cite:p}`radford2021clip` on NSD, its world
# analogue here), compared by cosine; it is robust to re-encoding but also finds images that merely
# show the same things. The **perceptual hash** (pHash) keeps the signs of the 8 × 8 lowest
# frequencies of the image's discrete cosine transform against their median: 64 bits that survive
# resizing and compression but not a different layout. Requiring both keeps the hash from matching
# unrelated images of similar layout and the embedding from matching different images of the same
# content.

# %% [markdown]
# ## 2. Precision and recall on the world's known leaks
# Leaks are drawn among the first 982 test ids (NSD's test-set size), so the detector is scored on
# all of them, not only on the test images this book's world uses by default. Only a dataset that can
# render its models' training pool (the world) knows its leaks; NSD's are not known (see section 5).
#
# The figure shows each test image's closest pool image by each signature: leaked images (orange)
# against the rest (grey). The box is the detector's threshold; everything inside it is flagged.

# %%
detection = None
if run.ds.has_training_pool:
    detection = overlap.detect_known_leaks(run.ds, run.models, search, n_search, n_fresh)
    print(detection)
    similarity_scatter(detection, seed=seed)

# %% [markdown]
# How the thresholds trade precision for recall (web copies; each line one cosine threshold):

# %%
if run.ds.has_training_pool:
    sweep = detection.sweep([0.9, 0.95, 0.98], [0, 2, 4, 6, 8, 10, 12, 16, 20])
    precision_recall_lines(sweep)
    print(sweep)

# %% [markdown]
# ## 3. What the detector finds and misses
# Top: test images; bottom: their closest pool image (web copies). Found leaks, missed leaks, and
# false alarms — test images that were never in the pool but have a near twin there.

# %%
if run.ds.has_training_pool:
    leak_examples(run.ds, detection, n_examples)

# %% [markdown]
# ## 4. Re-scoring without the overlapping images
# Identification is recomputed among the remaining test images (each image against the others), as
# the report re-evaluated. On the world, "leaked" are the test images known to be in the pool and
# "detected" those the detector flags (web copies); on NSD, the listed or detected ones (section 5).
# The bars are the mean over subjects; identification's chance level is 0.5, PixCorr and SSIM have none.

# %%
exclusion = overlap.overlap_exclusion(run.ds, run.models, search, detection, overlap_ids, overlap_id_kind,
                                      pool_images)
print(exclusion)

# %%
rescored = overlap.rescore_subjects(run.ds, subjects, run.models, exclusion, run.sampler)
print(rescored)
ax = ci_bars(rescored.by_subset, x="metric", hue="images", title="X_zc, mean over subjects (95% CI over images)")

# %% [markdown]
# Beside the report (Inception identification, mean and s.d. over the four NSD subjects, without the
# images also in LAION-5B; "without overlap" is this run's first excluded set):

# %%
beside = paper_beside(rescored.inception(), overlap.report_inception(), paper_label="Takagi & Nishimoto (NSD)")

# %% [markdown]
# ## 5. On NSD
# LAION-5B's 5.85 billion images are not something this book can search: the detector above needs
# the training pool's images (or their signatures), and neither LAION nor an index of it is
# available offline. On NSD the chapter therefore takes the overlapping images as a list: pass
# `overlap_ids` — a text file with one id per line or a CSV with an `nsdId`, `73KID` or `cocoId`
# column (set `overlap_id_kind`) — such as the one the authors published. If you do have a
# generative model's training images, pass them as `pool_images` and the detector runs against
# them. Without either, section 4 reports the scores on all test images only.

# %% [markdown]
# ## Summary
# - Section 2 prints the detector's precision and recall against the known leaks: searching the
#   exact pool finds the leaks more reliably than searching web copies, whose crops move some
#   hashes past the threshold; the sweep shows that no threshold pair on the grid escapes the
#   trade-off between the two.
# - The false alarms are not a bug of the detector: the world's scenes are simple and repetitive,
#   and the pool holds near twins of many test images (section 3) — the same question that
#   COCO's many similar photographs pose for a search of LAION.
# - Section 4 re-scores every subject's `X_zc` without the leaked (or the detected) images: set the
#   change in the mean over subjects against the spread between subjects, as the report did, and
#   against the report's "no change" in the table beside it. The leaked images alone are few and
#   identified only among themselves, so their intervals are wide; `dataset_options={"n_test": 982}`
#   makes the test set NSD-sized (and the reconstructions that much slower).
#
# ## What's next
# Chapter 14 scores every analysis of the book against the simulated brain's known truth.

# %% [markdown]
# ## References
# ```{bibliography}
# :filter: docname in docnames
# ```
