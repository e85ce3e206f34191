"""The interface every dataset implements, so that everything downstream is one code path."""

import abc

import numpy as np

from brainldm.errors import BrainLDMError, check_choice
from brainldm.data.noise import average_repeats, ncsnr_from_repeats, noise_ceiling

__all__ = ["Dataset", "SPLITS"]

SPLITS = ("train", "test")


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

