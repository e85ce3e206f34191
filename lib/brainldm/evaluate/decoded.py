"""How well what the extensions decode describes the seen image: captions (``+T``) and depth maps (``+D``).

A decoded caption is scored in a sentence-embedding space against the seen image's true
captions (:func:`caption_scores`), and on the world against the scene that was shown
(:func:`attribute_table`); a decoded depth map against the true one (:func:`depth_scores`).
Captions of one dataset, like depth maps of one world, share much, so each score comes with
a chance level from pairing each image with another one, and with two-way identification,
which measures what is specific to each image.
"""

import numpy as np
import pandas as pd

from brainldm.errors import BrainLDMError
from brainldm.evaluate.metrics import shuffled, two_way_identification
from brainldm.features.captions import sentence_embeddings
from brainldm.features.depth import depth_correlation
from brainldm.features.stimulus import resize_images

__all__ = ["caption_scores", "attribute_accuracy", "attribute_table", "depth_scores"]


def caption_scores(text_encoder, true_captions, captions, seed=0):
    """How well captions describe the seen images, per image.

    Parameters
    ----------
    text_encoder : object
        A model set's text encoder (see :func:`brainldm.features.captions.sentence_embeddings`).
    true_captions : list of n lists of str
        The seen images' captions (COCO's five on NSD).
    captions : dict of str to list of n str
        Captions to score, e.g. ``{"decoded": ..., "seen image": ...}``.
    seed : int
        Seeds the shuffled pairing that gives chance.

    Returns
    -------
    scores : dict of str to dict of str to array (n,)
        For each entry of ``captions``: ``identification``, the two-way identification of
        the caption among all captions by correlation with the image's true captions'
        mean embedding (chance 0.5), and ``cosine``, its mean cosine similarity to
        the image's true captions. ``"chance"``: the first entry's captions paired with
        other images (a derangement), whose ``cosine`` is the chance level of ``cosine``
        and whose ``identification`` is 0.5.
    """
    n = len(true_captions)
    counts = [len(caps) for caps in true_captions]
    if min(counts, default=0) < 1:
        raise BrainLDMError("every image needs at least one true caption to score captions against")
    true = sentence_embeddings(text_encoder, [text for caps in true_captions for text in caps]).astype(np.float64)
    owner = np.repeat(np.arange(n), counts)
    true_mean = np.zeros((n, true.shape[1]))
    np.add.at(true_mean, owner, true)
    true_mean /= np.linalg.norm(true_mean, axis=1, keepdims=True)

    def score(texts):
        emb = sentence_embeddings(text_encoder, texts).astype(np.float64)
        cosine = np.bincount(owner, weights=(true * emb[owner]).sum(1), minlength=n) / counts
        return emb, cosine

    scores = {}
    for name, texts in captions.items():
        if len(texts) != n:
            raise BrainLDMError(f"{len(texts)} captions under {name!r} for {n} images")
        emb, cosine = score(texts)
        scores[name] = {"identification": two_way_identification(true_mean, emb), "cosine": cosine}
    first = next(iter(captions))
    scores["chance"] = {"identification": np.full(n, 0.5),
                        "cosine": score(list(shuffled(np.array(captions[first], dtype=object), seed)))[1]}
    return scores


def attribute_accuracy(attributes, truth):
    """Which images' main-object and scene attributes a captioner got right (world).

    Parameters
    ----------
    attributes : dict
        Predicted attributes as the world captioner returns them (``place``, ``size``,
        ``position`` (n,); ``category``, ``color`` (n, objects)).
    truth : dict
        :func:`brainldm.models.world.nets.scene_attributes` of the seen scenes.

    Returns
    -------
    correct : dict of str to bool array (n,)
        ``place``, ``category``, ``color``, ``size``, ``position`` (of the main object).
    """
    return {name: np.asarray(attributes[name] if np.ndim(attributes[name]) == 1 else attributes[name][:, 0])
            == np.asarray(truth[name]) for name in ("place", "category", "color", "size", "position")}


def attribute_table(attributes, truth):
    """Accuracy of each attribute, per source of captions, beside the majority-class chance level.

    Parameters
    ----------
    attributes : dict of str to dict
        Source name (e.g. ``"decoded"``) -> predicted attributes (see :func:`attribute_accuracy`).
    truth : dict
        :func:`brainldm.models.world.nets.scene_attributes` of the seen scenes.

    Returns
    -------
    table : pandas DataFrame
        Index attribute; one column per source, then ``chance`` (the most frequent true
        value's share: always guessing it).
    """
    table = pd.DataFrame({source: {name: correct.mean() for name, correct in attribute_accuracy(attrs, truth).items()}
                          for source, attrs in attributes.items()})
    table["chance"] = [np.unique(np.asarray(truth[name]), return_counts=True)[1].max() / len(truth[name])
                       for name in table.index]
    return table


def depth_scores(depth, reference, size=None, seed=0):
    """Per-image scores of depth maps against references (same convention).

    Depth maps of one world share much (the ground recedes towards the horizon), so the
    correlation of a map with another image's reference is far from 0; the chance
    pairing and two-way identification measure what is specific to each image.

    Returns
    -------
    scores : dict of str to array (n,)
        ``r`` (:func:`brainldm.features.depth.depth_correlation`), ``r chance`` (each map against
        another image's reference) and ``identification`` (two-way identification of each map
        among all of them by correlation with the reference; chance 0.5).
    """
    size = size or min(np.shape(depth)[-1], np.shape(reference)[-1])
    flat = resize_images(np.asarray(depth, np.float32), size).reshape(len(depth), -1)
    ref = resize_images(np.asarray(reference, np.float32), size).reshape(len(reference), -1)
    return {"r": depth_correlation(depth, reference, size),
            "r chance": depth_correlation(depth, shuffled(np.asarray(reference), seed), size),
            "identification": two_way_identification(ref, flat)}
