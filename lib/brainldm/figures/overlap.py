"""Figures of the training-set overlap control (chapter 13; :mod:`brainldm.generate.overlap`).

* :func:`similarity_scatter`: each searched test image's closest pool image by embedding
  cosine and by perceptual hash, leaked images against the rest, with the detector's box;
* :func:`precision_recall_lines`: how the thresholds trade precision for recall;
* :func:`leak_examples`: found leaks, missed leaks and false alarms beside their pool partner.
"""

import matplotlib.pyplot as plt
import numpy as np

from brainldm.figures.viz import image_grid
from brainldm.generate.overlap import world_pool_images

__all__ = ["similarity_scatter", "precision_recall_lines", "leak_examples"]


def similarity_scatter(detection, seed=0):
    """One panel per pool searched: highest embedding cosine against smallest pHash distance.

    Parameters
    ----------
    detection : brainldm.generate.overlap.LeakDetection
    seed : int
        Seeds the vertical jitter that separates images at the same integer distance.

    Returns
    -------
    fig : matplotlib Figure
    """
    truth = detection.truth
    fig, axes = plt.subplots(1, len(detection.found), figsize=(4.5 * len(detection.found), 3.4), sharey=True,
                             squeeze=False)
    jitter = np.random.default_rng(seed).uniform(-0.3, 0.3, truth.size)
    for ax, (name, result) in zip(axes[0], detection.found.items()):
        for mask, colour, label in ((~truth, "0.6", "not in the pool"), (truth, "tab:orange", "in the pool")):
            ax.scatter(result["best_cosine"][mask], result["min_hamming"][mask] + jitter[mask], s=6, c=colour,
                       label=label)
        ax.axvline(detection.search.cosine_threshold, color="k", lw=0.8, ls="--")
        ax.axhline(detection.search.hamming_threshold + 0.5, color="k", lw=0.8, ls="--")
        ax.set_xlabel("highest embedding cosine with a pool image")
        ax.set_title(f"pool searched as {name}")
    axes[0, 0].set_ylabel("smallest pHash distance (bits)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def precision_recall_lines(sweep):
    """Precision against recall, one line per cosine threshold along the pHash thresholds.

    Parameters
    ----------
    sweep : brainldm.generate.overlap.ThresholdSweep

    Returns
    -------
    ax : matplotlib Axes
    """
    table = sweep.table
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for threshold, rows in table.groupby("cosine_threshold"):
        ax.plot(rows["recall"], rows["precision"], marker="o", ms=3, label=f"cosine >= {threshold:.2f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    hamming = table["hamming_threshold"]
    ax.set_title(f"pHash threshold {hamming.min()} to {hamming.max()} bits along each line")
    fig.tight_layout()
    return ax


def leak_examples(ds, detection, n_examples=6, pool="web copies"):
    """Test images (top) and their closest pool image (bottom): found leaks, missed leaks, false alarms.

    Parameters
    ----------
    ds : Dataset
        Renders the test images.
    detection : brainldm.generate.overlap.LeakDetection
    n_examples : int
        About a third of them of each kind, where there are so many.
    pool : str
        The pool searched (``"web copies"`` or ``"exact"``).

    Returns
    -------
    fig : matplotlib Figure or None
        None when there is nothing to show. The number of images of each kind is printed.
    """
    outcomes = detection.outcomes(pool)
    per_kind = max(1, n_examples // 3)
    picks = [(kind, i) for kind, positions in outcomes.items() for i in positions[:per_kind]]
    print({kind: len(positions) for kind, positions in outcomes.items()})
    if not picks:
        return None
    positions = np.array([i for _, i in picks])
    found = detection.found[pool]
    tests = ds.images(detection.query["ids"][positions])
    partners = world_pool_images(detection.partners(positions, pool), copies=pool == "web copies")
    labels = [f"{kind}\ncos {found['best_cosine'][i]:.3f}" for kind, i in picks]
    return image_grid([tests, partners], row_labels=["test", "pool"], col_labels=labels)
