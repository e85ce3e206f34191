"""The ``world`` dataset: simulated subjects looking at procedural scenes."""

import numpy as np

from brainldm.data import anatomy
from brainldm.data.cache import cached_arrays
from brainldm.errors import BrainLDMError, check_choice
from brainldm.data.datasets.base import Dataset
from brainldm.data.datasets.world import brain as brain_model
from brainldm.data.datasets.world.design import SUBJECT_NUMBERS, WorldDesign
from brainldm.data.datasets.world.scenes import Scenes, render_scenes

__all__ = ["WorldDataset", "CALIBRATION_IDS"]

#: images used only to standardise every voxel's drives (never shown to a subject)
CALIBRATION_IDS = 300_000_000 + np.arange(512)
_VERSION = "3"  # 2: captions no longer state where the main object is; 3: early cortex sees colour
_CHUNK = 512


def _render_arrays(ids, seed, size):
    scenes = render_scenes(ids, seed=seed, size=size)
    arrays = {k: getattr(scenes, k) for k in ("ids", "images", "depth", "place", "n_objects", "category",
                                              "color", "size", "x", "depth_of", "height")}
    arrays["captions"] = np.array(scenes.captions, dtype=str)
    return arrays


class WorldDataset(Dataset):
    """One simulated subject of the procedural world (see DESIGN.md, "The world").

    Parameters
    ----------
    subject : {"subj01", "subj02", "subj05", "subj07"}
    seed : int
        World seed: scenes, tuning and noise are all drawn from it.
    n_train, n_test, n_repeats : int
        Sizes (NSD: 8859, 982, 3). The test images are shared by all subjects.
    image_size : int
        Stimulus height and width in pixels.
    voxel_upsample : {1, 2, 3}
        Subdivide S1's 2.24 × 2.24 × 4.13 mm voxels: 4,182 visual voxels at 1, about four
        times as many at 2 (NSD's ``nsdgeneral`` has about 15,000).

    Attributes
    ----------
    roi_names : list of str
        S1's visual ROIs, NSD's stream names (each the union of its ROIs) and
        ``"nsdgeneral"`` (every voxel).
    ground_truth : dict of arrays over voxels
        The simulated tuning and noise (see :func:`brain.simulate_brain`) plus
        ``roi`` (index into :data:`brainldm.data.anatomy.ROI_NAMES`).
    """

    name = "world"
    has_ground_truth = True
    has_true_depth = True
    has_training_pool = True

    def __init__(self, subject="subj01", seed=0, n_train=1000, n_test=100, n_repeats=3, image_size=64,
                 voxel_upsample=1):
        self.subject = check_choice("subject", subject, SUBJECT_NUMBERS)
        if image_size < brain_model.GRID or image_size % brain_model.GRID:
            raise BrainLDMError(f"image_size must be a multiple of {brain_model.GRID}, got {image_size}")
        self.seed, self.image_size = int(seed), int(image_size)
        self.design = WorldDesign(n_train=n_train, n_test=n_test, n_repeats=n_repeats)
        self.voxel_upsample = voxel_upsample
        self.anatomy = anatomy.visual_anatomy(voxel_upsample)
        self._truth = dict(brain_model.simulate_brain(self.anatomy, subject, self.seed), roi=self.anatomy["roi"])
        self.roi_names = list(anatomy.ROI_NAMES) + list(anatomy.STREAMS) + ["nsdgeneral"]
        self._cache = {}
        self._load_options = {"seed": seed, "n_train": n_train, "n_test": n_test, "n_repeats": n_repeats,
                              "image_size": image_size, "voxel_upsample": voxel_upsample}

    @property
    def ground_truth(self):
        """The simulated brain's tuning and noise per voxel (see the class's attributes)."""
        return self._truth

    @property
    def cache_token(self):
        """What the stimuli depend on, for caches of stimulus features."""
        return f"world-seed{self.seed}-size{self.image_size}-v{_VERSION}"

    @property
    def n_voxels(self):
        return self.anatomy["voxels"].size

    def _roi_mask(self, roi):
        if roi == "nsdgeneral":
            return np.ones(self.n_voxels, dtype=bool)
        members = anatomy.STREAMS.get(roi, (roi,))
        return np.isin(self.anatomy["roi"], [anatomy.ROI_NAMES.index(r) for r in members])

    # --- stimuli ------------------------------------------------------------------
    def _scene_arrays(self, split):
        """Rendered stimuli of ``split`` (cached on disk), as a dict of arrays."""
        key = ("scenes", split)
        if key not in self._cache:
            ids = self.design.image_ids(self.subject, split)
            params = {"seed": self.seed, "size": self.image_size, "first": int(ids[0]), "n": int(ids.size)}
            self._cache[key] = cached_arrays("world_scenes", params, _VERSION,
                                             lambda: _render_arrays(ids, self.seed, self.image_size))
        return self._cache[key]

    def scenes(self, ids):
        """The :class:`Scenes` of ``ids``: images, depth maps, captions and true attributes."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        found = {}
        for split in ("train", "test"):
            arrays = self._scene_arrays(split)
            pos = np.searchsorted(arrays["ids"], ids).clip(0, arrays["ids"].size - 1)
            hit = arrays["ids"][pos] == ids
            if hit.all():
                found = {k: v[pos] for k, v in arrays.items()}
                break
        if not found:  # images outside this subject's experiment are rendered on demand
            found = _render_arrays(ids, self.seed, self.image_size)
        fields = {k: v for k, v in found.items() if k != "captions"}
        return Scenes(captions=[[str(c) for c in caps] for caps in found["captions"]], **fields)

    def images(self, ids):
        return self.scenes(ids).images

    def captions(self, ids):
        return self.scenes(ids).captions

    def depth(self, ids):
        """True depth maps, float32 ``(n, H, W)``, 0 near and 1 far."""
        return self.scenes(ids).depth

    # --- responses ----------------------------------------------------------------
    def _reference(self):
        """Mean and std of each voxel's drives over the calibration images."""
        def compute():
            feats = brain_model.scene_drive_features(render_scenes(CALIBRATION_IDS, self.seed, self.image_size))
            parts = brain_model.drives(feats, self._truth)
            ref = {"mean": np.stack([p.mean(0) for p in parts]),
                   "std": np.stack([p.std(0) + 1e-6 for p in parts]),
                   "std_total": np.ones(self.n_voxels, np.float32)}
            ref["std_total"] = brain_model.signal(feats, self._truth, ref).std(0) + 1e-6
            return ref
        params = {"seed": self.seed, "size": self.image_size, "subject": self.subject,
                  "upsample": self.voxel_upsample}
        return cached_arrays("world_reference", params, _VERSION, compute)

    def true_signal(self, ids):
        """Noiseless unit-variance responses of every voxel to ``ids``: float32 ``(n, v)``."""
        return self._per_chunk(ids, brain_model.signal)

    def true_low_level_drive(self, ids):
        """Every voxel's standardised low-level drive (contrast energy and colour in its pRF): ``(n, v)``."""
        return self._per_chunk(ids, brain_model.low_level_drive)

    def _per_chunk(self, ids, function):
        reference = self._reference()
        out = []
        for start in range(0, len(ids), _CHUNK):
            feats = brain_model.scene_drive_features(self.scenes(ids[start:start + _CHUNK]))
            out.append(function(feats, self._truth, reference))
        return np.concatenate(out) if out else np.zeros((0, self.n_voxels), np.float32)

    def _trials(self, split):
        key = ("trials", split)
        if key not in self._cache:
            self._cache[key] = cached_arrays("world_betas", self._betas_params(split), _VERSION,
                                             lambda: self._simulate_trials(split))
        arrays = self._cache[key]
        return arrays["betas"], arrays["ids"]

    def _betas_params(self, split):
        return {"seed": self.seed, "subject": self.subject, "split": split, "size": self.image_size,
                "upsample": self.voxel_upsample,
                "n_train": self.design.n_train, "n_test": self.design.n_test,
                "n_repeats": self.design.n_repeats}

    def _simulate_trials(self, split):
        ids = self.design.trial_ids(self.subject, split)
        uniq, inverse = np.unique(ids, return_inverse=True)
        signal = self.true_signal(uniq)[inverse]
        rng = np.random.default_rng([self.seed, SUBJECT_NUMBERS[self.subject], 0 if split == "train" else 1, 5])
        noise = rng.standard_normal(signal.shape, dtype=np.float32)
        betas = self._truth["gain"] * (self._truth["ncsnr"] * signal + noise)
        return {"betas": betas.astype(np.float32), "ids": ids}

    def to_volume(self, values, **kwargs):
        """A pycortex Volume of S1 with ``values`` (shape ``(n_voxels,)``) at this dataset's voxels."""
        values = np.asarray(values)
        if values.shape != (self.n_voxels,):
            raise BrainLDMError(f"expected a vector of {self.n_voxels} voxel values, got shape {values.shape}")
        return anatomy.voxels_to_volume(values, self.anatomy["voxels"], self.voxel_upsample, **kwargs)

