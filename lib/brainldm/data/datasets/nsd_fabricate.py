"""Write a tiny Natural Scenes Dataset tree with NSD's file names, keys, dtypes and 1-based conventions.

Tests and smoke runs of the chapters (``-p dataset nsd``) read it as if it were NSD;
nothing in it is real data. The betas carry a known signal
(:func:`known_raw_betas`) so that scaling, trial-to-image mapping and masking can
be checked exactly::

    python -m brainldm.data.datasets.nsd_fabricate /tmp/fake_nsd --subjects subj01 subj02 --sessions 2
"""

import argparse
import json
import sys
from dataclasses import dataclass

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import scipy.io

from brainldm.errors import BrainLDMError
from brainldm.data.datasets.nsd import NSD_SUBJECTS, STREAM_LABELS, NSDLayout

__all__ = ["FabricationSize", "fabricate_nsd", "fabricate_main", "known_raw_betas", "coco_id_of", "fabricated_caption", "N_REPEATS", "VOXEL_SIZE_MM",
           "CAPTION_WORDS"]

#: every image is shown this many times, as in NSD
N_REPEATS = 3

#: NSD's func1pt8mm voxel size
VOXEL_SIZE_MM = 1.8

_COCO_SPLITS = ("train2017", "val2017")
_TRIAL_CHUNK = 25


def known_raw_betas(subject, trials, image_ids, shape):
    """The int16 betas the fabricator writes: a code of the image, the voxel and the trial.

    ``raw = 8 * image_id + (x + 3 y + 5 z) + noise`` where ``noise`` in ``-3 … 3`` depends on
    the subject, the trial and the voxel, so that repeats of an image differ.

    Parameters
    ----------
    subject : str
        e.g. ``"subj01"``.
    trials : int array of shape (n,)
        0-based trial numbers over the whole experiment (``750 * (session - 1) + t - 1`` in NSD).
    image_ids : int array of shape (n,)
        The 0-based 73k id shown on each trial.
    shape : tuple of int
        ``(X, Y, Z)``.

    Returns
    -------
    raw : int16 array of shape (n, X, Y, Z)
        Divide by 300 for the betas in % signal change.
    """
    x, y, z = np.indices(shape, dtype=np.int64)
    voxel = np.arange(np.prod(shape), dtype=np.int64).reshape(shape)
    trials = np.asarray(trials, dtype=np.int64)[:, None, None, None]
    image_ids = np.asarray(image_ids, dtype=np.int64)[:, None, None, None]
    noise = (trials * 7919 + voxel * 104729 + NSD_SUBJECTS.index(subject) * 13) % 7 - 3
    raw = 8 * image_ids + (x + 3 * y + 5 * z) + noise
    if raw.max(initial=0) > np.iinfo(np.int16).max:
        raise BrainLDMError(f"too many images ({image_ids.max() + 1}) for int16 betas; use fewer")
    return raw.astype(np.int16)


def _roi_volumes(shape):
    """``streams`` and ``nsdgeneral`` volumes (-1 outside an ellipsoidal brain).

    The streams cover the posterior 4 % of the grid (NSD's visual ROIs cover a few
    percent), split into the seven labels along z; nsdgeneral (about 2.25 % of the
    grid, as in subj01) overlaps the streams and extends a little beyond them.
    """
    n_grid = int(np.prod(shape))
    axes = [(np.arange(n) + 0.5) / n * 2 - 1 for n in shape]
    gx, gy, gz = np.meshgrid(*axes, indexing="ij")
    brain = gx ** 2 + gy ** 2 + gz ** 2 <= 1
    coords = np.argwhere(brain)
    posterior = coords[np.lexsort((coords[:, 2], coords[:, 0], coords[:, 1]))]  # sorted by y first
    n_streams = min(max(28, round(0.04 * n_grid)), len(posterior))
    n_general = max(14, round(0.0225 * n_grid))
    streams = np.where(brain, 0, -1).astype(np.int16)
    region = posterior[:n_streams]
    by_z = region[np.argsort(region[:, 2], kind="stable")]
    labels = 1 + np.arange(n_streams) * len(STREAM_LABELS) // n_streams
    streams[tuple(by_z.T)] = labels
    general = np.where(brain, 0, -1).astype(np.int16)
    general[tuple(posterior[n_streams // 2:n_streams // 2 + n_general].T)] = 1
    return streams, general


def _image(image_id, size):
    """A deterministic RGB picture of one id: a colour from the id over a diagonal ramp."""
    rgb = np.array([(image_id * 37) % 256, (image_id * 91) % 256, (image_id * 53) % 256], dtype=np.float64)
    ramp = np.add.outer(np.arange(size), np.arange(size)) / max(2 * size - 2, 1)
    return np.clip(rgb * (0.5 + 0.5 * ramp[..., None]), 0, 255).astype(np.uint8)


def coco_id_of(image_id):
    """The fabricated COCO id of a 0-based 73k id (distinct, not equal to the id)."""
    return 100_000 + 7 * int(image_id)


@dataclass(frozen=True)
class FabricationSize:
    """How large a fabricated NSD tree is (:func:`fabricate_nsd`); NSD's own sizes in parentheses.

    Attributes
    ----------
    n_sessions, trials_per_session : int
        NSD: 40 and 750. Every image is shown :data:`N_REPEATS` times over all sessions,
        so ``n_sessions * trials_per_session`` must be a multiple of 3.
    shape : tuple of int
        ``(X, Y, Z)`` of the func1pt8mm grid (NSD subj01: 81, 104, 83).
    n_shared : int
        Images every subject sees (NSD: 1000); these make the test split.
    n_images : int, optional
        Size of the stimulus brick (NSD: 73000); by default just enough for 8 subjects.
    image_size : int
        Height and width of the stimuli (NSD: 425).
    """

    n_sessions: int = 2
    trials_per_session: int = 30
    shape: tuple = (12, 14, 10)
    n_shared: int = 6
    n_images: int = None
    image_size: int = 32


def fabricate_nsd(root, subjects=("subj01",), size=None, formats=("nii", "hdf5"), seed=0):
    """Write a tiny NSD tree under ``root``.

    Parameters
    ----------
    root : path
        Folder to write into (created).
    subjects : sequence of str
        Subjects whose betas and ROI volumes are written (the design always has all 8).
    size : FabricationSize, optional
        Sessions, trials, grid, images; the defaults of :class:`FabricationSize` by default.
    formats : sequence of {"nii", "hdf5"}
        Which betas files to write per session.
    seed : int
        Seed of the design (which images, in which order).

    Returns
    -------
    layout : NSDLayout
        Paths of the tree written.
    """
    size = size or FabricationSize()
    n_sessions, trials_per_session, shape = size.n_sessions, size.trials_per_session, tuple(size.shape)
    n_shared, n_images, image_size = size.n_shared, size.n_images, size.image_size
    layout = NSDLayout(root)
    n_trials = n_sessions * trials_per_session
    if n_trials % N_REPEATS:
        raise BrainLDMError(f"n_sessions * trials_per_session = {n_trials} must be a multiple of {N_REPEATS}")
    per_subject = n_trials // N_REPEATS
    if not 0 < n_shared < per_subject:
        raise BrainLDMError(f"n_shared must be in 1 .. {per_subject - 1} (images per subject), got {n_shared}")
    needed = n_shared + len(NSD_SUBJECTS) * (per_subject - n_shared)
    n_images = needed if n_images is None else n_images
    if n_images < needed:
        raise BrainLDMError(f"n_images must be at least {needed} for this design, got {n_images}")
    for subject in subjects:
        if subject not in NSD_SUBJECTS:
            raise BrainLDMError(f"unknown NSD subject {subject!r}; valid: {', '.join(NSD_SUBJECTS)}")

    # 1. the design: shared images first in every subject's list, as in NSD
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_images)
    shared = np.sort(order[:n_shared])
    private = order[n_shared:needed].reshape(len(NSD_SUBJECTS), per_subject - n_shared)
    subjectim = np.concatenate([np.tile(shared, (len(NSD_SUBJECTS), 1)), private], axis=1)
    masterordering = rng.permutation(np.repeat(np.arange(per_subject), N_REPEATS))
    layout.expdesign.parent.mkdir(parents=True, exist_ok=True)
    # 73KID and masterordering are 1-based, and MATLAB stores them as double row vectors
    scipy.io.savemat(layout.expdesign, {"masterordering": (masterordering + 1.0)[None, :],
                                        "subjectim": subjectim + 1.0,
                                        "sharedix": (shared + 1.0)[None, :]})

    # 2. per subject: ROI volumes and each session's betas
    affine = np.diag([VOXEL_SIZE_MM] * 3 + [1.0])
    streams, general = _roi_volumes(shape)
    for subject in subjects:
        for name, volume in (("streams", streams), ("nsdgeneral", general)):
            layout.roi(subject, name).parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(volume, affine), layout.roi(subject, name))
        layout.betas_dir(subject).mkdir(parents=True, exist_ok=True)
        ids = subjectim[NSD_SUBJECTS.index(subject)][masterordering]
        for session in range(1, n_sessions + 1):
            # trials x Z x Y x X in C order is X x Y x Z x trials in NIfTI's Fortran order
            raw = np.empty((trials_per_session,) + tuple(reversed(shape)), dtype=np.int16)
            first = (session - 1) * trials_per_session
            for start in range(0, trials_per_session, _TRIAL_CHUNK):
                trials = first + np.arange(start, min(start + _TRIAL_CHUNK, trials_per_session))
                raw[trials - first] = known_raw_betas(subject, trials, ids[trials], shape).transpose(0, 3, 2, 1)
            if "nii" in formats:
                nib.save(nib.Nifti1Image(raw.T, affine), layout.betas(subject, session, "nii"))
            if "hdf5" in formats:  # MATLAB-written: h5py sees trials x Z x Y x X
                with h5py.File(layout.betas(subject, session, "hdf5"), "w") as f:
                    f.create_dataset("betas", data=raw, chunks=(1,) + raw.shape[1:])

    # 3. stimuli, stimulus info and COCO captions
    layout.stimuli.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(layout.stimuli, "w") as f:
        brick = f.create_dataset("imgBrick", (n_images, image_size, image_size, 3), dtype=np.uint8,
                                 chunks=(1, image_size, image_size, 3))
        for image_id in range(n_images):
            brick[image_id] = _image(image_id, image_size)
    nsd_ids = np.arange(n_images)
    info = {"cocoId": [coco_id_of(i) for i in nsd_ids],
            "cocoSplit": [_COCO_SPLITS[int(i % 4 == 0)] for i in nsd_ids],
            "cropBox": ["(0, 0, 0.1, 0.1)"] * n_images,
            "loss": np.zeros(n_images),
            "nsdId": nsd_ids,
            "flagged": [False] * n_images,
            "BOLD5000": [False] * n_images,
            "shared1000": np.isin(nsd_ids, shared)}
    for k in range(len(NSD_SUBJECTS)):
        info[f"subject{k + 1}"] = np.isin(nsd_ids, subjectim[k]).astype(int)
    pd.DataFrame(info).to_csv(layout.stim_info)  # the real file keeps pandas' unnamed index column
    layout.annotations.mkdir(parents=True, exist_ok=True)
    for split in _COCO_SPLITS:
        members = [i for i in nsd_ids if info["cocoSplit"][i] == split]
        coco_ids = [coco_id_of(i) for i in members] + [1 + 2 * k for k in range(3)]  # plus non-NSD images
        annotations = [{"image_id": coco, "id": 10 * coco + j, "caption": fabricated_caption(coco, j)}
                       for coco in coco_ids for j in rng.permutation(5).tolist()]
        document = {"info": {"description": "fabricated COCO captions (brainldm)"}, "licenses": [],
                    "images": [{"id": coco, "file_name": f"{coco:012d}.jpg"} for coco in coco_ids],
                    "annotations": annotations}
        (layout.annotations / f"captions_{split}.json").write_text(json.dumps(document))
    return layout


def fabricate_main(argv=None):
    """``python -m brainldm.data.datasets.nsd_fabricate ROOT [options]``; returns the exit status."""
    parser = argparse.ArgumentParser(description="Write a tiny fabricated NSD tree (for tests and smoke runs).")
    parser.add_argument("root", help="folder to write into")
    parser.add_argument("--subjects", nargs="+", default=["subj01"])
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--trials-per-session", type=int, default=30)
    parser.add_argument("--shape", type=int, nargs=3, default=[12, 14, 10], metavar=("X", "Y", "Z"))
    parser.add_argument("--shared", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--formats", nargs="+", default=["nii", "hdf5"], choices=["nii", "hdf5"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = FabricationSize(n_sessions=args.sessions, trials_per_session=args.trials_per_session,
                           shape=tuple(args.shape), n_shared=args.shared, image_size=args.image_size)
    try:
        layout = fabricate_nsd(args.root, subjects=args.subjects, size=size, formats=args.formats, seed=args.seed)
    except BrainLDMError as error:
        print(f"nsd_fabricate: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(f"fabricated NSD tree in {layout.root}")
    return 0


#: the words of the fabricated captions: those the tiny text encoders of :mod:`brainldm.testing.fixtures` know
CAPTION_WORDS = ("a", "photo", "of", "cat", "dog", "on", "the", "grass")


def fabricated_caption(coco, j):
    """Caption ``j`` of a fabricated COCO image: eight words drawn per image and caption, so that, as with real
    COCO captions and CLIP, every token but the first varies across images."""
    words = np.random.default_rng([int(coco), int(j)]).choice(CAPTION_WORDS, 8)
    return " ".join(words.tolist())


if __name__ == "__main__":  # after every definition: fabricate_nsd calls fabricated_caption
    sys.exit(fabricate_main())
