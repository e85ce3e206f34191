"""Figures that describe the data and the models (chapter 1 and the models' appendix).

* :func:`stimulus_grid`: stimuli with their first caption and, where known, their true depth;
* :func:`trial_order`: which test image each of the first test trials showed;
* :func:`loss_curves`: the training loss of every world model, from its card.
"""

import matplotlib.pyplot as plt
import numpy as np

from brainldm.figures.viz import image_grid

__all__ = ["stimulus_grid", "trial_order", "loss_curves"]


def stimulus_grid(stimuli):
    """Images (and true depth maps, where the dataset knows them), titled with each image's first caption.

    Parameters
    ----------
    stimuli : brainldm.data.datasets.base.Stimuli

    Returns
    -------
    fig : matplotlib Figure
    """
    rows = {"image": stimuli.images}
    if stimuli.depth is not None:
        rows["depth (dark = near)"] = stimuli.depth
    return image_grid(rows, col_labels=[captions[0] for captions in stimuli.captions], cmap="gray")


def trial_order(counts, n_trials=300):
    """The image shown on each of the first ``n_trials`` test trials (images come back at random).

    ``counts`` is a dataset's :meth:`~brainldm.data.datasets.base.Dataset.trial_counts`; returns the
    matplotlib Axes.
    """
    fig, ax = plt.subplots(figsize=(8, 2.2))
    order = counts.test_order[:n_trials]
    ax.plot(order, ".", ms=3)
    ax.set_xlabel("test trial")
    ax.set_ylabel("test image (index)")
    repeats = max(len(counts.repeats["test"]), 1)
    ax.set_title(f"the first {len(order)} test trials: each image comes back up to {repeats} times, at random")
    fig.tight_layout()
    return ax


def loss_curves(card):
    """One panel per world model: its training loss over the steps of its last stage.

    Parameters
    ----------
    card : dict
        :func:`brainldm.models.world.model_card`; each model has ``loss_curve``, ``loss_curve_every``
        and optionally ``loss_curve_start``.

    Returns
    -------
    fig : matplotlib Figure
    """
    models = card["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(2.2 * len(models), 2.0), squeeze=False)
    for ax, (name, m) in zip(axes[0], models.items()):
        steps = m.get("loss_curve_start", 0) + np.arange(len(m["loss_curve"])) * m["loss_curve_every"]
        ax.plot(steps, m["loss_curve"])
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, 0].set_ylabel("training loss", fontsize=7)
    fig.tight_layout()
    return fig
