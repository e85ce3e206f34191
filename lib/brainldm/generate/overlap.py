"""The training-set overlap control (Takagi & Nishimoto's technical report, section 2.4).

About 7% of NSD's test images are also in LAION-5B, on which Stable Diffusion was
trained. Does a reconstruction look right because the generative model has seen the
very image? The report re-scores the reconstructions without the overlapping images
and finds no change. This module

1. finds test stimuli that also appear in a generative model's training pool by
   near-duplicate search: the cosine similarity of image-encoder embeddings
   (:func:`image_embeddings`) and the Hamming distance of DCT perceptual hashes
   (:func:`phash`), with thresholds as parameters (:class:`NearDuplicateSearch`);
2. scores that detector against a known answer (:func:`detect_known_leaks`, a
   :class:`LeakDetection`): in the world, the leaked test images are known
   (``design.is_leaked``) and the pool is rendered from its ids (:func:`world_signatures`).
   Web copies of an image are seldom identical to it (re-encoded, rescaled, cropped), so
   the pool can be searched as such copies (:func:`web_copies`);
3. says which test images to leave out (:func:`overlap_exclusion`, an :class:`Exclusion`):
   the world's known and detected leaks, a published list of overlapping NSD images
   (:func:`read_id_list`, since LAION-5B itself is not searchable here) or the detector run
   against a pool on disk (:func:`load_pool_images`);
4. re-scores every subject's reconstructions with and without them
   (:func:`rescore_subjects`, a :class:`Rescored`; one subject: :func:`rescore_without`).
"""

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from brainldm.data.cache import cache_key, cached_arrays
from brainldm.data.datasets.world.design import NSD_TEST_IMAGES, is_leaked, zoo_pool_ids
from brainldm.data.datasets.world.scenes import render_scenes
from brainldm.data.noise import mean_sd
from brainldm.data.progress import progress_bar
from brainldm.errors import BrainLDMError, check_choice
from brainldm.evaluate.metrics import (IDENTIFICATION_COLUMNS, identification_correlations,
                                       identification_from_correlations, pixcorr, score_table, ssim)
from brainldm.features.layers import feature_net_token
from brainldm.features.stimulus import resize_images
from brainldm.generate.reconstruction import brain_reconstructions
from brainldm.models.world import model_card

__all__ = ["phash", "hamming_distances", "image_embeddings", "web_copies", "signatures", "NearDuplicateSearch",
           "detection_scores", "threshold_sweep", "ThresholdSweep", "world_signatures", "world_pool_images",
           "LeakDetection", "detect_known_leaks", "read_id_list", "load_pool_images", "Exclusion",
           "overlap_exclusion", "rescore_without", "Rescored", "rescore_subjects", "report_inception", "RULES",
           "ID_KINDS", "RESCORED_METRICS"]

_VERSION = "2"  # 2: web copies resized with features.stimulus.resize_images
#: how the two similarities are combined: a pair is a near duplicate if ``both`` pass, if ``either`` does,
#: or by the ``embedding`` cosine or the ``phash`` distance alone
RULES = ("both", "either", "embedding", "phash")
#: id spaces a list of overlapping NSD images may use: 0-based 73k ids (``nsdId`` in
#: ``nsd_stim_info_merged.csv``), 1-based 73k ids (``73KID`` in ``nsd_expdesign.mat``) or COCO ids
ID_KINDS = ("nsd", "nsd1", "coco")


# --- signatures: perceptual hash and embedding ---------------------------------------------------

def _dct_matrix(n):
    """The orthonormal DCT-II matrix ``D`` (n, n): ``D @ x`` is the DCT of a length-n signal."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


def phash(images, hash_size=8, highfreq_factor=4):
    """DCT perceptual hashes of images (the ``imagehash.phash`` recipe, in numpy).

    Each image is converted to luminance, resized to ``N = hash_size * highfreq_factor``
    pixels square (antialiased), transformed with a 2-D DCT-II; the hash is the
    ``hash_size`` × ``hash_size`` lowest frequencies compared with their median.

    Parameters
    ----------
    images : uint8 array of shape (n, H, W, 3)
    hash_size : int
        The hash has ``hash_size**2`` bits.
    highfreq_factor : int

    Returns
    -------
    hashes : bool array of shape (n, hash_size**2)
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise BrainLDMError(f"expected images of shape (n, H, W, 3), found {images.shape}")
    size = int(hash_size) * int(highfreq_factor)
    luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    small = resize_images(luma, size).astype(np.float64)
    d = _dct_matrix(size)
    coefficients = d @ small @ d.T
    low = coefficients[:, :hash_size, :hash_size].reshape(len(images), -1)
    return low > np.median(low, axis=1, keepdims=True)


def hamming_distances(a, b):
    """Hamming distances between every hash of ``a`` (n, bits) and of ``b`` (m, bits): int (n, m)."""
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise BrainLDMError(f"expected hashes of shapes (n, bits) and (m, bits), found {a.shape} and {b.shape}")
    sa = np.where(a, 1.0, -1.0).astype(np.float32)
    sb = np.where(b, 1.0, -1.0).astype(np.float32)
    return np.rint((a.shape[1] - sa @ sb.T) / 2).astype(np.int64)  # agreements minus disagreements


def image_embeddings(models, images, net="clip", layer="embedding"):
    """Unit-norm image-encoder embeddings (CLIP on NSD, its analogue in the world).

    Returns
    -------
    embeddings : float32 array of shape (n, d)
    """
    features = models.feature_nets[net](np.asarray(images), [layer])[layer].astype(np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def signatures(models, images, hash_size=8):
    """Embedding and perceptual hash of each image: dict with ``embedding`` (n, d) and ``hash`` (n, bits)."""
    return {"embedding": image_embeddings(models, images), "hash": phash(images, hash_size)}


def web_copies(images, keys=None, seed=0, crop=0.08, jpeg_quality=75):
    """Images as a web crawl would hold them: slightly cropped, resized back and JPEG re-encoded.

    LAION's copies of COCO images are rarely identical to NSD's stimuli (NSD crops and
    resizes COCO images; the web holds re-encoded, rescaled versions). Searching the
    pool as such copies keeps the detector from relying on exact pixel equality.

    Parameters
    ----------
    images : uint8 array of shape (n, H, W, 3)
    keys : int array of shape (n,), optional
        One key per image (default ``0 … n-1``): image ``i`` is cropped with
        ``default_rng([seed, keys[i]])``, so a copy does not depend on its batch.
    seed : int
    crop : float
        Up to this fraction of the height and width is cut, split at random between the sides.
    jpeg_quality : int or None
        JPEG quality (None: no re-encoding).

    Returns
    -------
    copies : uint8 array of the same shape
    """
    images = np.asarray(images)
    keys = np.arange(len(images)) if keys is None else np.asarray(keys, np.int64)
    if keys.shape != (len(images),):
        raise BrainLDMError(f"expected one key per image ({len(images)}), found {keys.shape}")
    out = np.empty_like(images)
    h, w = images.shape[1:3]
    for i, image in enumerate(images):
        rng = np.random.default_rng([seed, int(keys[i])])
        cut_y, cut_x = (rng.uniform(0, crop, 2) * (h, w)).astype(int)
        top, left = rng.integers(0, cut_y + 1), rng.integers(0, cut_x + 1)
        cropped = image[None, top:h - (cut_y - top), left:w - (cut_x - left)]
        picture = Image.fromarray(resize_images(cropped, (h, w))[0])
        if jpeg_quality is not None:
            buffer = io.BytesIO()
            picture.save(buffer, format="JPEG", quality=int(jpeg_quality))
            picture = Image.open(buffer)
        out[i] = np.asarray(picture.convert("RGB"))
    return out


# --- the search ----------------------------------------------------------------------------------

class NearDuplicateSearch:
    """Find query images that have a near duplicate in a pool.

    Parameters
    ----------
    cosine_threshold : float
        A pair is similar by embedding if the cosine of their embeddings is at least this.
    hamming_threshold : int
        A pair is similar by hash if their perceptual hashes differ in at most this many bits.
    rule : {"both", "either", "embedding", "phash"}
        A near duplicate needs one pool image that passes both tests, either test, or only
        the one named.
    chunk_size : int
        Query images compared with the pool at once (memory: ``chunk_size`` × pool size).

    Attributes
    ----------
    pool_size_ : int
    """

    def __init__(self, cosine_threshold=0.95, hamming_threshold=10, rule="both", chunk_size=1024):
        self.cosine_threshold = cosine_threshold
        self.hamming_threshold = hamming_threshold
        self.rule = rule
        self.chunk_size = chunk_size

    def __str__(self):
        return (f"a near duplicate needs {self.rule!r} of: embedding cosine >= {self.cosine_threshold}, "
                f"pHash distance <= {self.hamming_threshold} bits")

    def fit(self, pool):
        """Index the pool: ``pool`` is a dict of ``embedding`` (m, d) and ``hash`` (m, bits) (:func:`signatures`)."""
        check_choice("rule", self.rule, RULES)
        self._pool = _check_signatures(pool, "pool")
        self.pool_size_ = len(self._pool["embedding"])
        return self

    def search(self, query):
        """Compare every query image with the pool.

        Parameters
        ----------
        query : dict
            ``embedding`` (n, d) and ``hash`` (n, bits), as :func:`signatures` makes them.

        Returns
        -------
        result : dict of arrays of shape (n,)
            ``flagged`` (bool), ``match`` (pool index of the flagged pair with the highest
            cosine, -1 if none), ``best_cosine`` and ``best_cosine_index`` (the pool's most
            similar embedding), ``min_hamming`` and ``min_hamming_index`` (its closest hash).
        """
        if not hasattr(self, "_pool"):
            raise BrainLDMError("this NearDuplicateSearch has no pool yet; call fit(pool_signatures) first")
        query = _check_signatures(query, "query")
        if query["embedding"].shape[1] != self._pool["embedding"].shape[1]:
            raise BrainLDMError(f"query embeddings have {query['embedding'].shape[1]} dimensions, the pool's "
                                f"{self._pool['embedding'].shape[1]}: embed both with the same image encoder")
        n = len(query["embedding"])
        out = {"flagged": np.zeros(n, bool), "match": np.full(n, -1), "best_cosine": np.zeros(n, np.float32),
               "best_cosine_index": np.zeros(n, np.int64), "min_hamming": np.zeros(n, np.int64),
               "min_hamming_index": np.zeros(n, np.int64)}
        for start in range(0, n, int(self.chunk_size)):
            rows = slice(start, start + int(self.chunk_size))
            cos = query["embedding"][rows] @ self._pool["embedding"].T
            ham = hamming_distances(query["hash"][rows], self._pool["hash"])
            by_cosine = cos >= self.cosine_threshold
            by_hash = ham <= self.hamming_threshold
            passed = {"both": by_cosine & by_hash, "either": by_cosine | by_hash, "embedding": by_cosine,
                      "phash": by_hash}[self.rule]
            out["flagged"][rows] = passed.any(1)
            out["match"][rows] = np.where(passed.any(1), np.where(passed, cos, -np.inf).argmax(1), -1)
            out["best_cosine_index"][rows] = cos.argmax(1)
            out["best_cosine"][rows] = cos.max(1)
            out["min_hamming_index"][rows] = ham.argmin(1)
            out["min_hamming"][rows] = ham.min(1)
        return out


def _check_signatures(signature, name):
    if not isinstance(signature, dict) or not {"embedding", "hash"} <= set(signature):
        raise BrainLDMError(f"the {name} must be a dict with 'embedding' and 'hash' arrays; make it with "
                            "brainldm.generate.overlap.signatures(models, images)")
    embedding = np.asarray(signature["embedding"], np.float32)
    hashes = np.asarray(signature["hash"], bool)
    if embedding.ndim != 2 or hashes.ndim != 2 or len(embedding) != len(hashes):
        raise BrainLDMError(f"the {name}'s embeddings {embedding.shape} and hashes {hashes.shape} must be 2-D "
                            "with one row per image")
    return {"embedding": embedding, "hash": hashes}


def detection_scores(flagged, truth):
    """Precision, recall and F1 of a detector against the known overlapping images.

    Parameters
    ----------
    flagged, truth : bool arrays of shape (n,)

    Returns
    -------
    scores : dict
        ``precision`` (NaN when nothing is flagged), ``recall`` (NaN when nothing is true),
        ``f1``, and the counts ``true_positives``, ``false_positives``, ``false_negatives``,
        ``n_flagged``, ``n_true``, ``n``.
    """
    flagged = np.asarray(flagged, bool)
    truth = np.asarray(truth, bool)
    if flagged.shape != truth.shape or flagged.ndim != 1:
        raise BrainLDMError(f"flagged and truth must be 1-D of the same length, found {flagged.shape} and "
                            f"{truth.shape}")
    tp = int((flagged & truth).sum())
    fp = int((flagged & ~truth).sum())
    fn = int((~flagged & truth).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "true_positives": tp, "false_positives": fp,
            "false_negatives": fn, "n_flagged": tp + fp, "n_true": tp + fn, "n": int(flagged.size)}


def threshold_sweep(query, pool, truth, cosine_thresholds=None, hamming_thresholds=None, rule="both"):
    """Precision and recall of :class:`NearDuplicateSearch` over a grid of thresholds.

    The query × pool similarities are computed once (memory: two query × pool matrices).

    Returns
    -------
    table : pandas DataFrame
        One row per (cosine_threshold, hamming_threshold) with :func:`detection_scores`.
    """
    check_choice("rule", rule, RULES)
    cosine_thresholds = np.linspace(0.8, 1.0, 9) if cosine_thresholds is None else cosine_thresholds
    hamming_thresholds = [0, 4, 8, 12, 16, 20] if hamming_thresholds is None else hamming_thresholds
    query, pool = _check_signatures(query, "query"), _check_signatures(pool, "pool")
    cos = query["embedding"] @ pool["embedding"].T  # every pair once; each threshold is then a comparison
    ham = hamming_distances(query["hash"], pool["hash"]).astype(np.int16)
    rows = []
    for c in cosine_thresholds:
        by_cosine = cos >= c
        for h in hamming_thresholds:
            by_hash = ham <= h
            passed = {"both": by_cosine & by_hash, "either": by_cosine | by_hash, "embedding": by_cosine,
                      "phash": by_hash}[rule]
            rows.append({"cosine_threshold": float(c), "hamming_threshold": int(h),
                         **detection_scores(passed.any(1), truth)})
    return pd.DataFrame(rows)


# --- the world: the pool the world models were trained on --------------------------------------

def world_signatures(models, test_ids=None, world_seed=0, n_fresh=None, crop=0.08, jpeg_quality=75, hash_size=8):
    """Signatures of world test stimuli and of the world models' training pool (cached).

    The pool is the one :func:`brainldm.training.train.load_pool` renders, with the size
    and seed recorded in the world models' card: fresh images plus the leaked test images.
    It is signed twice: as the exact images the models were trained on, and as
    :func:`web_copies` of them (``crop``, ``jpeg_quality``), as a web crawl would hold them.

    Parameters
    ----------
    models : ModelSet
        The world models (their image encoder embeds the images).
    test_ids : int array, optional
        Test stimuli to search for; default the first ``NSD_TEST_IMAGES`` (982) ids,
        among which the leaked ones are drawn.
    world_seed : int
        The seed of the world whose test stimuli are searched (the dataset's ``seed``); only
        the world the models were trained on (the card's seed) has leaked images.
    n_fresh : int, optional
        Search only the first ``n_fresh`` fresh pool images (and every leaked one); default
        all of them, as the models were trained. Fewer make a faster, easier search.
    crop, jpeg_quality
        See :func:`web_copies`.
    hash_size : int

    Returns
    -------
    query : dict
        :func:`signatures` of the test stimuli, with their ``ids``.
    pools : dict of str to dict
        ``"exact"`` and ``"web copies"``: :func:`signatures` of the pool, with ``ids`` and
        ``position`` (in the whole pool, for :func:`world_pool_images`).
    truth : bool array of shape (n_test,)
        Which test stimuli are in the pool (``design.is_leaked``).
    """
    card = model_card().get("pool")
    if not card:
        raise BrainLDMError("the world models' card has no 'pool' entry (n_fresh, seed, image_size); retrain "
                            "with `brainldm train-world` to record it")
    seed, size = int(card["seed"]), int(card["image_size"])
    test_ids = np.arange(NSD_TEST_IMAGES) if test_ids is None else np.asarray(test_ids, np.int64)
    whole = zoo_pool_ids(int(card["n_fresh"]), seed)  # the fresh images, then the leaked ones
    positions = np.arange(len(whole))
    if n_fresh is not None:
        positions = positions[(positions < int(n_fresh)) | (positions >= int(card["n_fresh"]))]
    pool_ids = whole[positions]
    params = {"net": feature_net_token(models.feature_nets["clip"]), "n_fresh": int(card["n_fresh"]), "seed": seed,
              "world_seed": int(world_seed), "size": size, "test": cache_key("ids", test_ids.tolist(), ""),
              "crop": crop, "jpeg_quality": jpeg_quality, "hash_size": hash_size}
    if n_fresh is not None:
        params["subset"] = cache_key("ids", pool_ids.tolist(), "")

    def compute():
        parts = {}

        def add(name, images):
            sig = signatures(models, images, hash_size)
            for key, value in sig.items():
                parts.setdefault(f"{name}_{key}", []).append(value)

        batch = 512
        for start in progress_bar(range(0, len(test_ids), batch), desc="overlap: test signatures", unit="batch"):
            add("query", render_scenes(test_ids[start:start + batch], seed=int(world_seed), size=size).images)
        for start in progress_bar(range(0, len(pool_ids), batch), desc="overlap: pool signatures", unit="batch"):
            images = render_scenes(pool_ids[start:start + batch], seed=seed, size=size).images
            add("exact", images)
            add("copies", web_copies(images, positions[start:start + batch], crop=crop, jpeg_quality=jpeg_quality))
        return {key: np.concatenate(value) for key, value in parts.items()}

    arrays = cached_arrays("overlap_signatures", params, _VERSION, compute)
    query = {"ids": test_ids, "embedding": arrays["query_embedding"], "hash": arrays["query_hash"]}
    pools = {name: {"ids": pool_ids, "position": positions, "embedding": arrays[f"{key}_embedding"],
                    "hash": arrays[f"{key}_hash"]} for name, key in (("exact", "exact"), ("web copies", "copies"))}
    return query, pools, is_leaked(test_ids, seed) & (int(world_seed) == seed)


def world_pool_images(indices, copies=True, crop=0.08, jpeg_quality=75):
    """Images ``indices`` of the world models' training pool, as :func:`world_signatures` searched them.

    Parameters
    ----------
    indices : int array
        Positions in the whole pool (``pool["position"]`` of :func:`world_signatures` at a
        search's ``match``).

    Returns
    -------
    images : uint8 array of shape (n, size, size, 3)
    """
    card = model_card()["pool"]
    indices = np.asarray(indices, np.int64)
    ids = zoo_pool_ids(int(card["n_fresh"]), int(card["seed"]))[indices]
    images = render_scenes(ids, seed=int(card["seed"]), size=int(card["image_size"])).images
    return web_copies(images, indices, crop=crop, jpeg_quality=jpeg_quality) if copies else images


# --- NSD: a published list, or a pool on disk ----------------------------------------------------

_COLUMNS = {"nsd": ("nsdid", "nsd_id", "nsd"), "nsd1": ("73kid", "73k_id", "kid73"), "coco": ("cocoid", "coco_id")}


def read_id_list(path, kind="nsd", dataset=None):
    """Read a list of image ids (one per line, or a CSV) and return them as the dataset's ids.

    Parameters
    ----------
    path : path
        A text file with one id per line (``#`` starts a comment), or a CSV file: the
        column named after ``kind`` (``nsdId``, ``73KID``, ``cocoId``; case-insensitive)
        is used if there is one, else a column named ``id``, else the first column.
    kind : {"nsd", "nsd1", "coco"}
        The ids are 0-based 73k ids, 1-based 73k ids, or COCO ids (mapped through the
        dataset's ``coco_ids``; needs ``dataset``).
    dataset : NSDDataset, optional
        Needed for ``kind="coco"``: its ``coco_ids(ids)`` maps test ids to COCO ids.

    Returns
    -------
    ids : int array
        0-based 73k ids (for ``coco``: the dataset's test ids whose COCO id is listed).
    """
    check_choice("id kind", kind, ID_KINDS)
    path = Path(path).expanduser()
    if not path.is_file():
        raise BrainLDMError(f"no list of overlapping image ids at {path}; give a text file with one id per line "
                            "or a CSV with an nsdId / 73KID / cocoId column")
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return np.zeros(0, np.int64)
    if "," in lines[0] or not _is_int(lines[0]):
        rows = list(csv.reader(lines))
        header = [h.strip().lower() for h in rows[0]]
        if any(_is_int(h) for h in header):  # a first row with a number in it is data, not a header
            column, body = 0, rows
        else:
            names = _COLUMNS[kind] + ("id",)
            column = next((header.index(n) for n in names if n in header), 0)
            body = rows[1:]
        values = [row[column].strip() for row in body if len(row) > column and row[column].strip()]
    else:
        values = lines
    bad = [v for v in values if not _is_int(v)]
    if bad:
        raise BrainLDMError(f"{path}: expected integer image ids, found {bad[0]!r}")
    ids = np.array([int(float(v)) for v in values], np.int64)
    if kind == "nsd1":
        if (ids < 1).any():
            raise BrainLDMError(f"{path}: 1-based 73k ids start at 1, found {ids.min()}; use kind='nsd' for "
                                "0-based ids")
        return ids - 1
    if kind == "coco":
        if dataset is None:
            raise BrainLDMError("COCO ids can only be mapped to NSD ids with the dataset: pass dataset=ds")
        test_ids = dataset.image_ids("test")
        coco, _ = dataset.coco_ids(test_ids)
        return test_ids[np.isin(coco, ids)]
    return ids


def _is_int(text):
    try:
        value = float(text)
    except ValueError:
        return False
    return value == int(value)


def load_pool_images(path):
    """Images of a generative model's training pool from disk, to search with :class:`NearDuplicateSearch`.

    Parameters
    ----------
    path : path
        A ``.npy`` file (uint8 (n, H, W, 3)), a ``.npz`` file with an ``images`` array, or a
        folder of ``.png`` / ``.jpg`` files (read in sorted order).

    Returns
    -------
    images : uint8 array of shape (n, H, W, 3)
    names : list of str
        The file names (folders) or ``str(index)``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise BrainLDMError(f"{path} holds no .png or .jpg images")
        images = [np.asarray(Image.open(p).convert("RGB")) for p in files]
        if len({im.shape for im in images}) > 1:
            size = images[0].shape[:2]
            images = [resize_images(im[None], size)[0] for im in images]
        return np.stack(images), [p.name for p in files]
    if path.suffix == ".npy" and path.is_file():
        images = np.load(path)
    elif path.suffix == ".npz" and path.is_file():
        with np.load(path) as data:
            if "images" not in data.files:
                raise BrainLDMError(f"{path} has no 'images' array (found: {', '.join(data.files)})")
            images = data["images"]
    else:
        raise BrainLDMError(f"no training pool at {path}: expected a folder of images, a .npy array or a .npz "
                            "with 'images'")
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise BrainLDMError(f"{path}: expected uint8 images of shape (n, H, W, 3), found {images.dtype} "
                            f"{images.shape}")
    return images, [str(i) for i in range(len(images))]


# --- re-scoring ----------------------------------------------------------------------------------

def rescore_without(models, seen, reconstructions, exclude, columns=None, **groups):
    """Identification (and PixCorr, SSIM) on all test images and again without the excluded ones.

    Two-way identification compares each image with the others, so the scores without the
    excluded images are recomputed among the remaining ones (as the report re-evaluated),
    not just averaged over a subset.

    Parameters
    ----------
    models : ModelSet
    seen : uint8 array of shape (n, H, W, 3)
    reconstructions : uint8 array of shape (n, s, h, w, 3)
        Resized to H × W if needed.
    exclude : bool array of shape (n,), or dict of str to such arrays
        The overlapping test images (several named sets: e.g. the known ones and the
        detected ones).
    columns : dict, optional
        Identification columns (default :data:`brainldm.evaluate.metrics.IDENTIFICATION_COLUMNS`).
    **groups
        Constant columns (``subject=...``).

    Returns
    -------
    table : pandas DataFrame
        One row per (images, metric): ``images`` is ``"all"``, ``"without <name>"`` and
        ``"<name> only"`` (when at least two images are in it; ``name`` is ``"overlap"``
        for a single mask), with ``n``, mean and 95% bootstrap CI.
    """
    seen = np.asarray(seen)
    reconstructions = np.asarray(reconstructions)
    if reconstructions.ndim != 5 or len(reconstructions) != len(seen):
        raise BrainLDMError(f"expected reconstructions of shape (n, samples, h, w, 3) for {len(seen)} seen images, "
                            f"found {reconstructions.shape}")
    n, n_samples = reconstructions.shape[:2]
    if reconstructions.shape[2:4] != seen.shape[1:3]:  # compared at the seen images' size, as evaluate does
        reconstructions = resize_images(reconstructions.reshape((n * n_samples,) + reconstructions.shape[2:]),
                                        seen.shape[1]).reshape((n, n_samples) + seen.shape[1:])
    masks = exclude if isinstance(exclude, dict) else {"overlap": exclude}
    subsets = {"all": np.ones(n, bool)}
    for name, mask in masks.items():
        mask = np.asarray(mask, bool)
        if mask.shape != (n,):
            raise BrainLDMError(f"expected one {name!r} flag per seen image ({n}), found shape {mask.shape}")
        subsets[f"without {name}"] = ~mask
        subsets[f"{name} only"] = mask
    # every image's features once; each subset's identification compares its images among themselves
    columns = columns or IDENTIFICATION_COLUMNS
    features = {}
    for net_name in dict.fromkeys(net for net, _ in columns.values()):
        layers = list(dict.fromkeys(layer for net, layer in columns.values() if net == net_name))
        net = models.feature_nets[net_name]
        orig = net(seen, layers)
        gen = net(reconstructions.reshape((n * n_samples,) + seen.shape[1:]), layers)
        for column, (name, layer) in columns.items():
            if name == net_name:
                features[column] = identification_correlations(orig[layer], gen[layer].reshape(n, n_samples, -1))
    pixels = {"PixCorr": pixcorr(seen, reconstructions), "SSIM": ssim(seen, reconstructions)}
    tables = []
    for name, keep in subsets.items():
        if keep.sum() < 2:
            continue
        scores = {column: identification_from_correlations(r[:, keep][:, :, keep])
                  for column, r in features.items()}
        scores.update({metric: values[keep] for metric, values in pixels.items()})
        tables.append(score_table(scores, images=name, n=int(keep.sum()), **groups))
    return pd.concat(tables, ignore_index=True)


# --- the chapter's analyses: result objects -------------------------------------------------------

#: the metrics the chapter re-scores (the report's Inception first)
RESCORED_METRICS = ("Inception", "CLIP late", "CNN mid", "PixCorr", "SSIM")
# Takagi & Nishimoto's technical report, section 2.4: Inception-v3 identification, mean and s.d. over
# the four NSD subjects, on all test images and without those also in LAION-5B
_REPORT_INCEPTION = {"all test images": (0.743, 0.017), "without overlap": (0.743, 0.016)}


def report_inception():
    """The report's Inception identification with and without the overlap: rows ``mean`` and ``s.d.``."""
    return pd.DataFrame(_REPORT_INCEPTION, index=["mean", "s.d."])


@dataclass(frozen=True)
class ThresholdSweep:
    """Precision and recall over a grid of thresholds (:meth:`LeakDetection.sweep`).

    Attributes
    ----------
    table : pandas DataFrame
        One row per (``cosine_threshold``, ``hamming_threshold``) with :func:`detection_scores`.
    """

    table: pd.DataFrame

    @property
    def best(self):
        """The row with the highest F1: pandas Series."""
        return self.table.loc[self.table["f1"].idxmax()]

    def __str__(self):
        best = self.best
        return (f"best F1 on this grid: {best['f1']:.3f} at cosine >= {best['cosine_threshold']:.2f}, pHash <= "
                f"{int(best['hamming_threshold'])} bits (precision {best['precision']:.3f}, "
                f"recall {best['recall']:.3f})")


@dataclass(frozen=True)
class LeakDetection:
    """The near-duplicate detector scored against the world's known leaks (:func:`detect_known_leaks`).

    Attributes
    ----------
    query : dict
        :func:`signatures` of the searched test stimuli, with their ``ids``.
    pools : dict of str to dict
        ``"exact"`` and ``"web copies"``: the pool's signatures (see :func:`world_signatures`).
    truth : bool array of shape (n_query,)
        Which searched test stimuli are in the pool.
    found : dict of str to dict
        Per pool, :meth:`NearDuplicateSearch.search` of the query.
    search : NearDuplicateSearch
    """

    query: dict
    pools: dict
    truth: np.ndarray
    found: dict
    search: NearDuplicateSearch

    @property
    def table(self):
        """Precision, recall, F1 and counts per pool searched: pandas DataFrame."""
        rows = [{"pool searched as": name, "pool size": len(self.pools[name]["ids"]),
                 **detection_scores(found["flagged"], self.truth)} for name, found in self.found.items()]
        columns = ["pool size", "precision", "recall", "f1", "true_positives", "false_positives", "false_negatives"]
        return pd.DataFrame(rows).set_index("pool searched as")[columns]

    def __str__(self):
        pool_size = len(next(iter(self.pools.values()))["ids"])
        return (f"{int(self.truth.sum())} of {self.truth.size} test ids searched are in the {pool_size}-image "
                f"training pool; {self.search}\n" + self.table.round(3).to_string(na_rep="–"))

    def sweep(self, cosine_thresholds=None, hamming_thresholds=None, pool="web copies"):
        """:func:`threshold_sweep` of the query against one pool, with the search's rule: :class:`ThresholdSweep`."""
        check_choice("pool", pool, self.pools)
        return ThresholdSweep(threshold_sweep(self.query, self.pools[pool], self.truth, cosine_thresholds,
                                              hamming_thresholds, self.search.rule))

    def outcomes(self, pool="web copies"):
        """Query positions of the ``found``, ``missed`` and ``false alarm`` leaks: dict of str to int array."""
        flagged = self.found[pool]["flagged"]
        return {"found": np.flatnonzero(flagged & self.truth), "missed": np.flatnonzero(~flagged & self.truth),
                "false alarm": np.flatnonzero(flagged & ~self.truth)}

    def partners(self, positions, pool="web copies"):
        """Each query's closest pool image: the flagged match, else the highest cosine (positions in the whole pool)."""
        found = self.found[pool]
        closest = np.where(found["match"] >= 0, found["match"], found["best_cosine_index"])
        return self.pools[pool]["position"][closest[np.asarray(positions, np.int64)]]

    def test_masks(self, test_ids, pool="web copies"):
        """Which of ``test_ids`` are ``leaked`` (known) and ``detected`` (flagged in ``pool``): dict of bool arrays."""
        position = {int(i): k for k, i in enumerate(self.query["ids"])}
        missing = [int(i) for i in test_ids if int(i) not in position]
        if missing:
            raise BrainLDMError(f"test ids {missing[:5]} were not searched; search them (n_search=None searches "
                                "every test id)")
        rows = [position[int(i)] for i in test_ids]
        return {"leaked": self.truth[rows], "detected": self.found[pool]["flagged"][rows]}


def detect_known_leaks(ds, models, search, n_search=None, n_fresh=None):
    """Search the world's test stimuli in the pool its models were trained on, and score the search.

    Parameters
    ----------
    ds : Dataset
        A dataset with :attr:`~brainldm.data.datasets.base.Dataset.has_training_pool` (the world).
    models : ModelSet
        Its models (the image encoder embeds the images).
    search : NearDuplicateSearch
        Thresholds and rule (it is fitted to each pool here).
    n_search : int, optional
        Search the first ``n_search`` test ids and the dataset's test images; default the
        first ``NSD_TEST_IMAGES`` (982), among which the leaks are drawn.
    n_fresh : int, optional
        See :func:`world_signatures`.

    Returns
    -------
    detection : LeakDetection
    """
    if not ds.has_training_pool:
        raise BrainLDMError(f"the {ds.name} dataset cannot render its models' training pool, so its leaked test "
                            "images are not known; give a list of overlapping images (overlap_exclusion)")
    test_ids = ds.image_ids("test")
    searched = np.union1d(np.arange(NSD_TEST_IMAGES if n_search is None else int(n_search)), test_ids)
    query, pools, truth = world_signatures(models, test_ids=searched, world_seed=ds.seed, n_fresh=n_fresh)
    found = {name: search.fit(pool).search(query) for name, pool in pools.items()}
    return LeakDetection(query, pools, truth, found, search)


@dataclass(frozen=True)
class Exclusion:
    """Which test images to leave out when re-scoring (:func:`overlap_exclusion`).

    Attributes
    ----------
    masks : dict of str to bool array of shape (n_test,)
        One named set of excluded test images per entry (none: nothing is excluded).
    source : str
        Where the sets come from.
    """

    masks: dict
    source: str

    def __str__(self):
        return f"excluded: {self.source}" + "".join(f"; {name}: {mask.sum()} of {mask.size} test images"
                                                    for name, mask in self.masks.items())


def overlap_exclusion(ds, models, search, detection=None, listed=None, id_kind="nsd", pool=None):
    """The test images of ``ds`` to leave out, from the best source there is.

    In order: the world's known leaks and the detector's flags (``detection``); a list of
    overlapping image ids (``listed``, e.g. the authors' published one); the detector run
    against a training pool on disk (``pool``); else nothing.

    Parameters
    ----------
    ds : Dataset
    models : ModelSet
    search : NearDuplicateSearch
        Used with ``pool``.
    detection : LeakDetection, optional
    listed : path, optional
        See :func:`read_id_list`, with ``id_kind``.
    id_kind : {"nsd", "nsd1", "coco"}
    pool : path, optional
        See :func:`load_pool_images`.

    Returns
    -------
    exclusion : Exclusion
    """
    test_ids = ds.image_ids("test")
    if detection is not None:
        return Exclusion(detection.test_masks(test_ids), "the world's known leaks and the detector's flags "
                                                         f"(web copies; {detection.search})")
    if listed is not None:
        return Exclusion({"listed": np.isin(test_ids, read_id_list(listed, id_kind, dataset=ds))},
                         f"the list in {listed}")
    if pool is not None:
        flags = search.fit(signatures(models, load_pool_images(pool)[0])).search(signatures(models, ds.images(test_ids)))
        return Exclusion({"detected": flags["flagged"]}, f"the detector run against {pool} ({search})")
    return Exclusion({}, "nothing: no list of overlapping images was given")


@dataclass(frozen=True)
class Rescored:
    """Every subject's ``X_zc`` scores on all test images and without the excluded ones (:func:`rescore_subjects`).

    Attributes
    ----------
    table : pandas DataFrame
        One row per (subject, images, metric) of :func:`rescore_without`: ``n``, ``mean``,
        ``ci_low``, ``ci_high`` (95% bootstrap CI over images), ``chance``.
    metrics : tuple of str
        The metrics the summaries keep, in order.
    """

    table: pd.DataFrame
    metrics: tuple = RESCORED_METRICS

    @property
    def subsets(self):
        """The image sets scored: ``"all"``, then ``"without <name>"`` and ``"<name> only"`` per excluded set."""
        return list(dict.fromkeys(self.table["images"]))

    def over_subjects(self):
        """Mean and s.d. over subjects of each subset's mean score: index images, columns (metric, mean/std)."""
        wide = self.table.pivot_table(index=["images", "subject"], columns="metric", values="mean", sort=False)
        return wide[list(self.metrics)].groupby(level="images", sort=False).agg(["mean", "std"])

    @property
    def by_subset(self):
        """Mean over subjects of each (images, metric) mean and CI bounds, for :func:`brainldm.figures.ci_bars`."""
        part = self.table[self.table["metric"].isin(self.metrics)].copy()
        part["metric"] = pd.Categorical(part["metric"], categories=list(self.metrics), ordered=True)
        means = part.groupby(["metric", "images"], sort=False, observed=True)[["mean", "ci_low", "ci_high"]].mean()
        return means.sort_index(level="metric", sort_remaining=False).reset_index().astype({"metric": str})

    def report_table(self):
        """``"mean ± s.d."`` over subjects, as the report prints them: index subsets, columns metrics."""
        summary = self.over_subjects()
        return pd.DataFrame({m: [mean_sd(summary.loc[s, (m, "mean")], summary.loc[s, (m, "std")])
                                 for s in summary.index] for m in self.metrics}, index=summary.index)

    def __str__(self):
        return "mean and s.d. over subjects (the report's format):\n" + self.report_table().to_string(na_rep="–")

    def inception(self):
        """Inception identification beside :func:`report_inception`: rows ``mean``, ``s.d.``; the first exclusion.

        Columns ``all test images`` and (when something was excluded) ``without overlap``,
        the first ``"without <name>"`` subset.
        """
        summary = self.over_subjects()
        without = next((s for s in self.subsets if s.startswith("without")), None)
        columns = {"all test images": "all", **({"without overlap": without} if without else {})}
        return pd.DataFrame({label: [summary.loc[s, ("Inception", "mean")], summary.loc[s, ("Inception", "std")]]
                             for label, s in columns.items()}, index=["mean", "s.d."])


def rescore_subjects(ds, subjects, models, exclusion, settings=None):
    """Reconstruct every subject's test images (``X_zc``, cached) and re-score them without the excluded ones.

    Parameters
    ----------
    ds : Dataset
        One subject's dataset; the others are :meth:`~brainldm.data.datasets.base.Dataset.with_subject`.
    subjects : list of str
    models : ModelSet
    exclusion : Exclusion
        Which test images to leave out (:func:`overlap_exclusion`).
    settings : SamplerSettings, optional
        See :func:`brainldm.generate.reconstruction.brain_reconstructions`.

    Returns
    -------
    rescored : Rescored
    """
    test_ids = ds.image_ids("test")
    tables = []
    for name in subjects:
        subject = ds.with_subject(name)
        ids, recon, _ = brain_reconstructions(subject, models, settings)
        if not np.array_equal(ids, test_ids):
            raise BrainLDMError(f"{name}'s reconstructed test images differ from {ds.subject}'s; the overlap "
                                "control needs the same test images for every subject")
        tables.append(rescore_without(models, subject.images(ids), recon["X_zc"], exclusion.masks, subject=name))
    return Rescored(pd.concat(tables, ignore_index=True))
