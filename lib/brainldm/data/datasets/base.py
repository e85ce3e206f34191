"""The interface every dataset implements, so that everything downstream is one code path."""

import abc
from dataclasses import dataclass

import numpy as np
import pandas as pd

from brainldm.errors import BrainLDMError, check_choice
from brainldm.data.noise import average_repeats, ncsnr_from_repeats, noise_ceiling

__all__ = ["Dataset", "SPLITS", "Stimuli", "TrialCounts"]

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Stimuli:
    """Some stimuli of a dataset (:meth:`Dataset.stimuli`).

    Attributes
    ----------
    ids : int array of shape (n,)
    images : uint8 array of shape (n, H, W, 3)
    captions : list of n lists of str
        Every caption of each image (COCO's five on NSD, five paraphrases in the world).
    depth : float32 array of shape (n, H, W) or None
        The true depth maps (0 near, 1 far), where the dataset knows them (the world).
    """

    ids: np.ndarray
    images: np.ndarray
    captions: list
    depth: np.ndarray = None

    def describe(self, n=3):
        """Every caption of the first ``n`` images, one image per block: str."""
        return "\n".join(f"image {image_id}:\n" + "\n".join(f"    {caption}" for caption in captions)
                         for image_id, captions in zip(self.ids[:n], self.captions[:n]))


@dataclass(frozen=True)
class TrialCounts:
    """How many trials and images each split has, and how often images repeat (:meth:`Dataset.trial_counts`).

    Attributes
    ----------
    trials, images : dict of str to int
        Trials and unique images of each split.
    repeats : dict of str to list of int
        Per split, how many images were seen 1, 2, 3... times.
    test_order : int array of shape (n_test_trials,)
        The index (among the sorted test images) of the image shown on each test trial, in order.
    """

    trials: dict
    images: dict
    repeats: dict
    test_order: np.ndarray

    def __str__(self):
        return (f"train: {self.trials['train']} trials of {self.images['train']} images\n"
                f"test:  {self.trials['test']} trials of {self.images['test']} images (shared by all subjects)\n"
                f"repeats per training image: {self.repeats['train']} (count of images seen 1, 2, 3... times)")


class Dataset(abc.ABC):
    """One subject's fMRI responses to images, with the images and their captions.

    Subclasses set ``name``, ``subject``, ``roi_names`` and implement the
    abstract methods; ROI selection, noise ceilings and argument checks live here.

    Attributes
    ----------
    name : str
        Dataset name, as given to :func:`brainldm.data.datasets.load_dataset`.
    subject : str
        Subject name, e.g. ``"subj01"``.
    roi_names : list of str
        The ROIs :meth:`roi_mask` accepts.
    n_voxels : int
        Number of voxels in a full (``roi=None``) beta row.
    """

    name: str
    subject: str
    roi_names: list

    # --- what a dataset provides -------------------------------------------------
    @abc.abstractmethod
    def _trials(self, split):
        """Single-trial betas of ``split``: float32 ``(n_trials, n_voxels)`` and ``(n_trials,)`` ids."""

    @abc.abstractmethod
    def _roi_mask(self, roi):
        """Boolean ``(n_voxels,)`` mask of one valid ROI name."""

    @abc.abstractmethod
    def images(self, ids):
        """Stimulus images.

        Parameters
        ----------
        ids : array of shape (n,)
            Image ids, as returned by :meth:`betas`.

        Returns
        -------
        images : uint8 array of shape (n, H, W, 3)
        """

    @abc.abstractmethod
    def captions(self, ids):
        """Captions of each image: a list (length n) of lists of strings."""

    @abc.abstractmethod
    def to_volume(self, values, **kwargs):
        """Turn a ``(n_voxels,)`` vector into a map of the subject's brain (pycortex Volume or NIfTI)."""

    #: whether the dataset knows what generated its responses (the simulated world does; NSD does not)
    has_ground_truth = False
    #: whether the dataset knows the true depth of every pixel (:meth:`depth`; the world does)
    has_true_depth = False
    #: whether the dataset can render the pool its generative models were trained on, with the test images
    #: leaked into it (the world can: :func:`brainldm.generate.overlap.detect_known_leaks`); NSD's models were
    #: trained on LAION-5B, which cannot be searched here
    has_training_pool = False
    #: the voxels on pycortex's S1 (positions on its flatmap, ROI of each voxel), when the dataset's voxels sit on
    #: S1 (the world's do: :func:`brainldm.data.anatomy.visual_anatomy`); None for a dataset in its own brain space
    anatomy = None
    #: the keyword arguments the dataset was made with (:func:`~brainldm.data.datasets.load_dataset` sets them)
    _load_options = None

    def depth(self, ids):
        """True depth maps, float32 ``(n, H, W)``, 0 near and 1 far; only where :attr:`has_true_depth`."""
        raise BrainLDMError(f"the {self.name} dataset does not know the true depth of its images; check "
                            "dataset.has_true_depth first, or estimate depth (brainldm.features.depth)")

    @property
    def ground_truth(self):
        """The per-voxel truth behind the responses; only a simulated dataset has one."""
        raise BrainLDMError(f"the {self.name} dataset has no ground truth: only the embedded world simulates the "
                            "brain it measures; check dataset.has_ground_truth first, or run with dataset='world'")

    @property
    @abc.abstractmethod
    def n_voxels(self):
        """Number of voxels in a full beta row."""

    # --- shared behaviour ---------------------------------------------------------
    @property
    def cache_token(self):
        """What the stimuli (images, captions) depend on, for caches of stimulus features."""
        return self.name

    def roi_mask(self, roi):
        """Boolean mask of shape ``(n_voxels,)`` of one ROI name, or of the union of a list of them."""
        if roi is None:
            return np.ones(self.n_voxels, dtype=bool)
        rois = [roi] if isinstance(roi, str) else list(roi)
        if not rois:
            raise BrainLDMError(f"empty ROI list; valid ROIs are: {', '.join(self.roi_names)}")
        mask = np.zeros(self.n_voxels, dtype=bool)
        for name in rois:
            check_choice("ROI", name, self.roi_names)
            mask |= self._roi_mask(name)
        return mask

    def betas(self, split, roi=None, average=False):
        """Responses of the voxels of ``roi`` to the images of ``split``.

        Parameters
        ----------
        split : {"train", "test"}
            Test images are shared by every subject.
        roi : str or list of str, optional
            A name from :attr:`roi_names` or a list of them (their union); all voxels if None.
        average : bool
            Average the repeats of each image (one row per image) instead of one row per trial.

        Returns
        -------
        betas : float32 array of shape (n, n_roi_voxels)
        ids : int array of shape (n,)
            The image shown in each row.
        """
        check_choice("split", split, SPLITS)
        mask = self.roi_mask(roi)
        betas, ids = self._trials(split)
        betas = betas[:, mask] if roi is not None else betas
        if average:
            betas, ids = average_repeats(betas, ids)
        return np.ascontiguousarray(betas, dtype=np.float32), ids

    def image_ids(self, split):
        """The sorted unique image ids of ``split``."""
        check_choice("split", split, SPLITS)
        return np.unique(self._trials(split)[1])

    def stimuli(self, ids):
        """Images, captions and (where the dataset knows them) true depth maps of ``ids``: :class:`Stimuli`."""
        ids = np.asarray(ids, dtype=np.int64)
        return Stimuli(ids, self.images(ids), self.captions(ids), self.depth(ids) if self.has_true_depth else None)

    def trial_counts(self):
        """Trials, images and repeats of each split: :class:`TrialCounts`."""
        ids = {split: self._trials(split)[1] for split in SPLITS}
        unique = {split: np.unique(ids[split], return_inverse=True, return_counts=True) for split in SPLITS}
        return TrialCounts(trials={split: int(ids[split].size) for split in SPLITS},
                           images={split: int(unique[split][0].size) for split in SPLITS},
                           repeats={split: np.bincount(unique[split][2])[1:].tolist() for split in SPLITS},
                           test_order=unique["test"][1])

    def roi_sizes(self):
        """Voxels of every ROI of :attr:`roi_names`: pandas Series named ``voxels``."""
        return pd.Series({roi: int(self.roi_mask(roi).sum()) for roi in self.roi_names}, name="voxels")

    def with_subject(self, subject):
        """The same dataset, made with the same options, for another subject (the test images are shared)."""
        if subject == self.subject:
            return self
        if self._load_options is None:
            raise BrainLDMError(f"this {type(self).__name__} was not made by load_dataset, so its options are "
                                f"unknown; use load_dataset({self.name!r}, subject={subject!r}, **options)")
        dataset = type(self)(subject=subject, **self._load_options)
        dataset._load_options = self._load_options
        return dataset

    def ncsnr(self, split="test", roi=None):
        """Noise-ceiling SNR of every voxel of ``roi``, estimated from the repeats of ``split``."""
        betas, ids = self.betas(split, roi=roi)
        return ncsnr_from_repeats(betas, ids)

    def noise_ceiling(self, split="test", roi=None, n_average=None):
        """Noise ceiling (% explainable variance) of every voxel of ``roi``.

        ``n_average`` is the number of trials averaged in the responses to be
        predicted; by default the number of repeats per image of ``split``.
        """
        if n_average is None:
            ids = self._trials(split)[1]
            n_average = np.unique(ids, return_counts=True)[1].mean()
        return noise_ceiling(self.ncsnr(split, roi), n_average)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} {self.subject} ({self.n_voxels} voxels)>"

