"""Simulated subjects: voxels on S1's visual cortex with known tuning and noise.

Each voxel's noiseless response is a mix of three standardised drives (the low-level one
itself luminance and colour: :data:`DRIVES`), with
variance fractions that depend on its ROI (and are jittered per voxel):

* **low-level** — a compressive pRF model (Kay et al. 2013): oriented contrast
  energy pooled by a Gaussian pRF, raised to the power 0.5, mixed with the colour
  in the same pRF: two cone-opponent signals (red–green, blue–yellow) weighted
  by the voxel's hue preference, as hue is decodable from V1–V4 voxels (Engel et
  al. 1997; Brouwer & Heeger 2009). Early voxels' pRFs
  follow their position on the flattened cortex, so cortical neighbours have
  neighbouring pRFs (contralateral hemifield, eccentricity along V1's long axis,
  polar angle across it).
* **semantic** — a weighted sum of category areas, place type and colour areas,
  with an ROI profile (FFA/OFA faces, EBA bodies and animals, PPA/RSC/OPA places
  and houses, V4 colour, LO objects) plus voxel-specific weights.
* **spatial** — object position, depth, size and number (IPS, V3AB, OPA).

None of these is the LDM's ``z`` or ``c``: whether ``z`` explains early cortex
and ``c`` higher cortex is left for the book to find, and the truth kept here
(:attr:`Brain.tuning`, :attr:`Brain.ncsnr`) lets it check.

A trial's beta is ``gain * (ncsnr * signal + noise)`` with unit-variance signal
and noise, so ``ncsnr`` is exactly NSD's noise-ceiling SNR.
"""

import numpy as np

from brainldm.data.anatomy import ROI_NAMES, ROI_STREAM
from brainldm.data.datasets.world.design import SUBJECT_NUMBERS
from brainldm.data.datasets.world.scenes import CATEGORIES, COLOR_NAMES, PLACES

__all__ = ["TUNING_CLASSES", "DRIVES", "SUBJECT_SNR", "scene_drive_features", "simulate_brain", "drives",
           "mix_weights", "signal", "low_level_drive"]

TUNING_CLASSES = ("low-level", "semantic", "spatial")
#: the raw drives :func:`drives` returns; the first two make up the low-level class
DRIVES = ("luminance", "chromatic", "semantic", "spatial")
#: overall signal-to-noise of each simulated subject (NSD's subj01 has the cleanest data)
SUBJECT_SNR = {"subj01": 1.0, "subj02": 0.9, "subj05": 0.8, "subj07": 0.65}
GRID = 16  # energy maps are pooled to GRID x GRID before the pRFs
ORIENTATIONS = np.deg2rad([0, 45, 90, 135])
_STREAM_SNR = {"early": 0.6, "midventral": 0.45, "midlateral": 0.45, "midparietal": 0.4,
               "ventral": 0.45, "lateral": 0.42, "parietal": 0.32}
#: share of a voxel's low-level variance that is colour (the rest is contrast energy): half in V1–V4,
#: whose BOLD responses to red–green modulation are as strong as to luminance modulation (Engel et
#: al. 1997), a quarter in the higher areas' small low-level part
_CHROMATIC_SHARE = {"V1": 0.5, "V2": 0.5, "V3": 0.5, "V4": 0.5}
_CHROMATIC_DEFAULT = 0.25
# variance fractions (low-level, semantic, spatial) and pRF size factor per ROI
_ROI_TUNING = {
    "V1": ((0.97, 0.03, 0.0), 1.0), "V2": ((0.95, 0.05, 0.0), 1.5), "V3": ((0.9, 0.07, 0.03), 2.0),
    "V4": ((0.55, 0.4, 0.05), 3.0), "LO": ((0.4, 0.55, 0.05), 3.5), "V3AB": ((0.5, 0.05, 0.45), 3.0),
    "FFA": ((0.08, 0.87, 0.05), 6.0), "PPA": ((0.1, 0.82, 0.08), 6.0), "RSC": ((0.05, 0.85, 0.1), 6.0),
    "OFA": ((0.2, 0.75, 0.05), 5.0), "EBA": ((0.12, 0.8, 0.08), 5.0), "OPA": ((0.15, 0.6, 0.25), 5.0),
    "IPS": ((0.1, 0.1, 0.8), 6.0),
}
_SEM_NAMES = ([f"category:{c}" for c in CATEGORIES] + [f"place:{p}" for p in PLACES]
              + [f"colour:{c}" for c in COLOR_NAMES])
_ROI_PROFILE = {  # preferred semantic features of each ROI (the rest get small random weights)
    "V4": [f"colour:{c}" for c in COLOR_NAMES], "LO": [f"category:{c}" for c in CATEGORIES],
    "FFA": ["category:face"], "OFA": ["category:face"], "EBA": ["category:body", "category:animal"],
    "PPA": ["place:city", "place:room", "category:house"], "RSC": [f"place:{p}" for p in PLACES],
    "OPA": ["place:forest", "place:city", "category:house"],
}


def scene_drive_features(scenes):
    """The features the simulated brain responds to (not the LDM's stimulus features).

    Parameters
    ----------
    scenes : Scenes

    Returns
    -------
    features : dict
        ``energy`` (n, 4, GRID, GRID) oriented contrast energy; ``chroma`` (n, 2, GRID, GRID)
        the red–green (R − G) and blue–yellow (B − (R + G) / 2) signals, in [-1, 1]; ``semantic``
        (n, 15) category, place and colour areas; ``spatial`` (n, 6) main-object
        x, mean x, main depth, mean depth, main height, number of objects.
    """
    rgb = scenes.images.astype(np.float32) / 255.0
    grey = rgb.mean(-1)
    gy, gx = np.gradient(grey, axis=(1, 2))
    n = grey.shape[0]
    energy = _pool(np.stack([(gx * np.cos(t) + gy * np.sin(t)) ** 2 for t in ORIENTATIONS], axis=1))
    r, g, b = np.moveaxis(rgb, -1, 0)
    chroma = _pool(np.stack([r - g, b - (r + g) / 2], axis=1))

    present = scenes.category >= 0
    area = np.where(present, np.nan_to_num(scenes.height) ** 2, 0.0)
    semantic = np.zeros((n, len(_SEM_NAMES)), np.float32)
    for k in range(len(CATEGORIES)):
        semantic[:, k] = (area * (scenes.category == k)).sum(1)
    semantic[np.arange(n), len(CATEGORIES) + scenes.place] = 1.0
    for k in range(len(COLOR_NAMES)):
        semantic[:, len(CATEGORIES) + len(PLACES) + k] = (area * (scenes.color == k)).sum(1)
    spatial = np.stack([
        scenes.x[:, 0], np.nanmean(scenes.x, 1), scenes.depth_of[:, 0], np.nanmean(scenes.depth_of, 1),
        scenes.height[:, 0], scenes.n_objects.astype(np.float32),
    ], axis=1).astype(np.float32)
    return {"energy": energy.astype(np.float32), "chroma": chroma.astype(np.float32), "semantic": semantic,
            "spatial": spatial}


def _pool(maps):
    """Block means of (n, k, size, size) maps: (n, k, GRID, GRID)."""
    n, k, size = maps.shape[:3]
    block = size // GRID
    return maps[:, :, :block * GRID, :block * GRID].reshape(n, k, GRID, block, GRID, block).mean((3, 5))


def _ranks(values):
    order = np.argsort(np.argsort(values))
    return (order + 0.5) / max(values.size, 1)


def _prfs(anatomy, factor, rng):
    """pRF centres (x, y in image units, y down) and sizes of every voxel."""
    flat, hemi, roi = anatomy["flat"], anatomy["hemisphere"], anatomy["roi"]
    early = np.isin(roi, [ROI_NAMES.index(r) for r in ("V1", "V2", "V3")])
    v1 = roi == ROI_NAMES.index("V1")
    ecc = rng.uniform(0.0, 0.35, roi.size)
    angle = rng.uniform(-np.pi / 2, np.pi / 2, roi.size)
    for h in (0, 1):
        sel, ref = early & (hemi == h), v1 & (hemi == h)
        if not ref.any():
            continue
        centre = flat[ref].mean(0)
        axis = np.linalg.svd(flat[ref] - centre, full_matrices=False)[2]
        coords = (flat[sel] - centre) @ axis.T
        ecc[sel] = 0.04 + 0.5 * _ranks(coords[:, 0])
        angle[sel] = (_ranks(coords[:, 1]) - 0.5) * np.pi
    side = np.where(hemi == 0, 1.0, -1.0)  # left hemisphere sees the right visual field
    x = 0.5 + side * ecc * np.cos(angle)
    y = 0.5 - ecc * np.sin(angle)
    sigma = (0.03 + 0.12 * ecc) * factor
    return x, y, sigma


def _smooth_field(flat, rng, n_bumps=12, width=40.0):
    """A smooth random field on the flat cortex, scaled to [0.6, 1.4]."""
    centres = flat[rng.integers(0, flat.shape[0], n_bumps)]
    signs = rng.choice([-1.0, 1.0], n_bumps)
    d2 = ((flat[:, None, :] - centres[None]) ** 2).sum(-1)
    field = (signs * np.exp(-d2 / (2 * width ** 2))).sum(1)
    field = (field - field.min()) / (np.ptp(field) + 1e-9)
    return 0.6 + 0.8 * field


def simulate_brain(anatomy, subject, seed):
    """Draw one subject's voxel tuning and noise level.

    Parameters
    ----------
    anatomy : dict
        From :func:`brainldm.data.anatomy.visual_anatomy`.
    subject : str
    seed : int

    Returns
    -------
    brain : dict of arrays over voxels
        ``fractions`` (v, 3) variance fractions of (low-level, semantic, spatial);
        ``tuning`` (v,) index into :data:`TUNING_CLASSES` of the largest fraction;
        ``prf_x``, ``prf_y``, ``prf_sigma``; ``orientation_weights`` (v, 4); ``chromatic_share`` (v,)
        of the low-level fraction; ``hue_weights`` (v, 2) unit vectors, the preferred direction in
        the (red–green, blue–yellow) plane;
        ``semantic_weights`` (v, 15); ``spatial_weights`` (v, 6); ``ncsnr`` (v,); ``gain`` (v,).
    """
    rng = np.random.default_rng([seed, SUBJECT_NUMBERS[subject], 11])
    roi_names = [ROI_NAMES[r] for r in anatomy["roi"]]
    n = len(roi_names)
    mean_fractions = np.array([_ROI_TUNING[r][0] for r in roi_names])
    fractions = np.array([rng.dirichlet(40 * np.maximum(f, 0.01)) for f in mean_fractions])
    factor = np.array([_ROI_TUNING[r][1] for r in roi_names])
    prf_x, prf_y, prf_sigma = _prfs(anatomy, factor, rng)

    semantic = rng.normal(0, 0.3, (n, len(_SEM_NAMES)))
    for i, r in enumerate(roi_names):
        for name in _ROI_PROFILE.get(r, []):
            semantic[i, _SEM_NAMES.index(name)] += rng.uniform(1.0, 2.0)
    ncsnr = (np.array([_STREAM_SNR[ROI_STREAM[r]] for r in roi_names]) * SUBJECT_SNR[subject]
             * rng.lognormal(0, 0.35, n) * _smooth_field(anatomy["flat"], rng))
    ncsnr[rng.random(n) < 0.08] *= 0.1  # some voxels barely respond
    brain = {
        "fractions": fractions.astype(np.float32),
        "tuning": fractions.argmax(1),
        "prf_x": prf_x.astype(np.float32), "prf_y": prf_y.astype(np.float32),
        "prf_sigma": prf_sigma.astype(np.float32),
        "orientation_weights": rng.dirichlet(np.ones(4) * 2, n).astype(np.float32),
        "semantic_weights": semantic.astype(np.float32),
        "spatial_weights": rng.normal(0, 1, (n, 6)).astype(np.float32),
        "ncsnr": ncsnr.astype(np.float32),
        "gain": rng.lognormal(0.3, 0.3, n).astype(np.float32),
    }
    # drawn last, so that every draw above is what it was before colour was added
    hue = rng.uniform(0, 2 * np.pi, n)
    brain["hue_weights"] = np.stack([np.cos(hue), np.sin(hue)], axis=1).astype(np.float32)
    brain["chromatic_share"] = np.array([_CHROMATIC_SHARE.get(r, _CHROMATIC_DEFAULT) for r in roi_names],
                                        np.float32)
    return brain


def drives(features, brain):
    """The raw (unstandardised) drives of every voxel, in :data:`DRIVES` order: arrays of shape (n_images, v)."""
    g = (np.arange(GRID) + 0.5) / GRID
    gx, gy = np.meshgrid(g, g)  # (GRID, GRID): x across, y down
    prf = np.exp(-((gx[..., None] - brain["prf_x"]) ** 2 + (gy[..., None] - brain["prf_y"]) ** 2)
                 / (2 * brain["prf_sigma"] ** 2)).reshape(GRID * GRID, -1)
    prf /= prf.sum(0, keepdims=True)
    energy = features["energy"].reshape(features["energy"].shape[0], 4, GRID * GRID)
    low = sum((energy[:, k] @ prf) * brain["orientation_weights"][:, k] for k in range(4))
    low = np.sqrt(np.maximum(low, 0))
    chroma = features["chroma"].reshape(features["chroma"].shape[0], 2, GRID * GRID)
    colour = sum((chroma[:, k] @ prf) * brain["hue_weights"][:, k] for k in range(2))
    sem = features["semantic"] @ brain["semantic_weights"].T
    spatial = features["spatial"] @ brain["spatial_weights"].T
    return low, colour, sem, spatial


def mix_weights(brain):
    """How much of each drive (:data:`DRIVES`) a voxel's response holds: (v, 4), squares summing to 1."""
    low, sem, spatial = brain["fractions"].T
    share = brain["chromatic_share"]
    return np.sqrt(np.stack([low * (1 - share), low * share, sem, spatial], axis=1))


def _standardised(parts, reference):
    return [(part - reference["mean"][k]) / reference["std"][k] for k, part in enumerate(parts)]


def low_level_drive(features, brain, reference):
    """Each voxel's standardised low-level drive (contrast energy and colour in its pRF): (n_images, v)."""
    luminance, colour = _standardised(drives(features, brain), reference)[:2]
    share = brain["chromatic_share"]
    return (np.sqrt(1 - share) * luminance + np.sqrt(share) * colour).astype(np.float32)


def signal(features, brain, reference):
    """Unit-variance noiseless responses: (n_images, v).

    ``reference`` holds the mean and std of each drive over a fixed calibration
    set of images, so that a voxel's response to an image does not depend on
    which other images are in the experiment.
    """
    weights = mix_weights(brain)
    total = sum(weights[:, k] * z for k, z in enumerate(_standardised(drives(features, brain), reference)))
    return (total / reference["std_total"]).astype(np.float32)
