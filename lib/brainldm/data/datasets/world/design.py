"""Which images of the world each subject sees, and which the world models were trained on.

Image ids are integers and every image is a pure function of ``(seed, id)``
(see :mod:`.scenes`), so the whole design is a set of id ranges:

==================================  ==========================================
ids                                 what
==================================  ==========================================
``0 … n_test-1``                    the shared test set, seen by every subject
``SUBJECT_BASE * k + 0 … n_train``  subject ``k``'s own training images
``POOL_BASE + 0 …``                 the world models' training pool
==================================  ==========================================

As NSD's test images partly appear in LAION-5B (about 7%, seed 002), the test
ids for which :func:`is_leaked` is true are also in the models' training pool,
so that the overlap-control chapter has a known answer.
"""

from dataclasses import dataclass

import numpy as np

from brainldm.errors import BrainLDMError, check_choice

__all__ = ["WorldDesign", "SUBJECT_NUMBERS", "LEAK_FRACTION", "is_leaked", "zoo_pool_ids",
           "NSD_TEST_IMAGES"]

SUBJECT_NUMBERS = {"subj01": 1, "subj02": 2, "subj05": 5, "subj07": 7}
SUBJECT_BASE = 1_000_000
POOL_BASE = 100_000_000
LEAK_FRACTION = 0.07
NSD_TEST_IMAGES = 982  # the test set can grow to NSD's size; leaks are drawn among these ids


def is_leaked(ids, seed=0):
    """Whether each test id is also in the world models' training pool (about 7% are)."""
    ids = np.asarray(ids, dtype=np.int64)
    draws = np.array([np.random.default_rng([seed, 7, int(i)]).random() for i in ids])
    return (ids < NSD_TEST_IMAGES) & (draws < LEAK_FRACTION)


def zoo_pool_ids(n_images, seed=0):
    """Ids of the world models' training pool: ``n_images`` fresh images plus the leaked test images.

    Returns
    -------
    ids : int array of shape (n_images + n_leaked,)
    """
    test = np.arange(NSD_TEST_IMAGES)
    return np.concatenate([POOL_BASE + np.arange(n_images), test[is_leaked(test, seed)]])


@dataclass(frozen=True)
class WorldDesign:
    """Sizes of one world experiment (defaults fit this 2-core machine; NSD: 8859 / 982 / 3).

    Attributes
    ----------
    n_train : int
        Training images per subject (NSD: 8859).
    n_test : int
        Shared test images (NSD: 982 with the 37 public sessions).
    n_repeats : int
        Presentations of every image (NSD: up to 3).
    """

    n_train: int = 1000
    n_test: int = 100
    n_repeats: int = 3

    def __post_init__(self):
        if self.n_train < 1 or self.n_test < 2 or self.n_repeats < 1:
            raise BrainLDMError(f"world sizes must be n_train >= 1, n_test >= 2, n_repeats >= 1; got "
                                f"{self.n_train}, {self.n_test}, {self.n_repeats}")
        if self.n_test > NSD_TEST_IMAGES:
            raise BrainLDMError(f"n_test={self.n_test} exceeds NSD's {NSD_TEST_IMAGES} shared test images")
        if self.n_train >= SUBJECT_BASE:
            raise BrainLDMError(f"n_train must be below {SUBJECT_BASE}, got {self.n_train}")

    def image_ids(self, subject, split):
        """The unique image ids ``subject`` sees in ``split``."""
        number = SUBJECT_NUMBERS[check_choice("subject", subject, SUBJECT_NUMBERS)]
        if split == "test":
            return np.arange(self.n_test, dtype=np.int64)
        return SUBJECT_BASE * number + np.arange(self.n_train, dtype=np.int64)

    def trial_ids(self, subject, split):
        """The image of every trial of ``split``: each image ``n_repeats`` times, in a shuffled order."""
        ids = np.repeat(self.image_ids(subject, split), self.n_repeats)
        rng = np.random.default_rng([SUBJECT_NUMBERS[subject], 0 if split == "train" else 1])
        return ids[rng.permutation(ids.size)]
