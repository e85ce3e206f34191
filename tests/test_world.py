import dataclasses

import numpy as np
import pytest

from brainldm.data.anatomy import ROI_NAMES, STREAMS
from brainldm.data.datasets import SUBJECTS, load_dataset
from brainldm.data.datasets.world import CATEGORIES, COLOR_NAMES, PLACES, is_leaked, render_scenes, zoo_pool_ids
from brainldm.data.datasets.world.design import WorldDesign
from brainldm.errors import BrainLDMError


def test_scenes_are_a_pure_function_of_seed_and_id():
    a = render_scenes([5, 9, 2], seed=3, size=32)
    b = render_scenes([2, 5], seed=3, size=32)
    np.testing.assert_array_equal(a.images[[2, 0]], b.images)
    assert a.captions[0] == b.captions[1]
    c = render_scenes([5], seed=4, size=32)
    assert not np.array_equal(a.images[0], c.images[0])


def test_scene_shapes_and_attributes():
    s = render_scenes(np.arange(30), seed=0, size=64)
    assert s.images.shape == (30, 64, 64, 3) and s.images.dtype == np.uint8
    assert s.depth.shape == (30, 64, 64) and 0 <= s.depth.min() and s.depth.max() <= 1
    assert set(s.n_objects) <= {1, 2, 3}
    assert ((s.category >= 0).sum(1) == s.n_objects).all()
    # object 0 is the one that looks largest
    assert (np.nan_to_num(s.height[:, 1:], nan=0) <= s.height[:, :1]).all()


def test_captions_paraphrase_the_main_object_and_place():
    s = render_scenes(np.arange(20), seed=0, size=32)
    for caps, cat, col in zip(s.captions, s.category[:, 0], s.color[:, 0]):
        assert len(caps) >= 3 and len(set(caps)) == len(caps)
        assert all(COLOR_NAMES[col] in c for c in caps)
    assert all(isinstance(c, str) for caps in s.captions for c in caps)
    assert set(s.place) <= set(range(len(PLACES))) and set(s.category[:, 0]) <= set(range(len(CATEGORIES)))


def test_design_splits_and_leak():
    d = WorldDesign(n_train=50, n_test=20)
    test = d.image_ids("subj01", "test")
    assert np.array_equal(test, d.image_ids("subj07", "test"))  # shared by all subjects
    assert not set(d.image_ids("subj01", "train")) & set(d.image_ids("subj02", "train"))
    trials = d.trial_ids("subj01", "train")
    assert np.array_equal(np.unique(trials, return_counts=True)[1], np.full(50, 3))
    pool = zoo_pool_ids(1000)
    leaked = np.arange(982)[is_leaked(np.arange(982))]
    assert set(leaked) <= set(pool)
    assert 0.04 < leaked.size / 982 < 0.10
    assert not set(pool) & set(d.image_ids("subj01", "train"))
    with pytest.raises(BrainLDMError, match="n_test"):
        WorldDesign(n_test=5000)


def test_betas_interface(world):
    betas, ids = world.betas("train")
    assert betas.dtype == np.float32 and betas.shape == (120, world.n_voxels) and ids.shape == (120,)
    avg, uniq = world.betas("test", roi="early", average=True)
    assert avg.shape == (10, int(world.roi_mask("early").sum()))
    np.testing.assert_array_equal(uniq, np.arange(10))
    single, single_ids = world.betas("test", roi="early")
    np.testing.assert_allclose(avg[3], single[single_ids == 3].mean(0), rtol=1e-5, atol=1e-5)
    assert world.images(uniq[:2]).shape == (2, 64, 64, 3)
    assert len(world.captions(uniq[:2])) == 2


def test_world_is_deterministic(world):
    again = load_dataset("world", subject="subj01", n_train=40, n_test=10)
    np.testing.assert_array_equal(world.betas("train")[0], again._simulate_trials("train")["betas"])


def test_test_images_are_shared_but_responses_differ(world):
    other = load_dataset("world", subject="subj02", n_train=40, n_test=10)
    a, ids_a = world.betas("test", average=True)
    b, ids_b = other.betas("test", average=True)
    np.testing.assert_array_equal(ids_a, ids_b)
    assert not np.allclose(a, b)


def test_rois_cover_every_stream(world):
    for roi in ROI_NAMES:
        assert world.roi_mask(roi).sum() > 20, roi
    for stream, rois in STREAMS.items():
        np.testing.assert_array_equal(world.roi_mask(stream), world.roi_mask(list(rois)))
    assert world.roi_mask("nsdgeneral").all()
    with pytest.raises(BrainLDMError, match="unknown ROI 'V9'.*'early'"):
        world.roi_mask("V9")


def test_noise_ceiling_estimate_recovers_the_simulated_snr():
    ds = load_dataset("world", subject="subj05", n_train=400, n_test=10)
    estimate = ds.ncsnr("train")
    assert np.corrcoef(estimate, ds.ground_truth["ncsnr"])[0, 1] > 0.9
    assert abs(np.median(estimate / np.maximum(ds.ground_truth["ncsnr"], 1e-3)) - 1) < 0.1


def test_simulated_tuning_is_what_the_design_says(world):
    scenes = world.scenes(np.arange(200, 600))
    signal = world.true_signal(scenes.ids)
    faces = (scenes.category == CATEGORIES.index("face")).any(1)
    ffa = world.roi_mask("FFA")
    assert signal[faces][:, ffa].mean() - signal[~faces][:, ffa].mean() > 0.5
    # early voxels: cortical neighbours have neighbouring pRFs
    early = np.flatnonzero(world.roi_mask("V1"))
    flat = world.anatomy["flat"][early]
    prf = np.c_[world.ground_truth["prf_x"][early], world.ground_truth["prf_y"][early]]
    d_cortex = np.linalg.norm(flat[:, None] - flat[None], axis=-1) + np.eye(early.size) * 1e9
    neighbour = d_cortex.argmin(1)
    near = np.linalg.norm(prf - prf[neighbour], axis=1)
    random = np.linalg.norm(prf - prf[np.random.default_rng(0).permutation(early.size)], axis=1)
    assert np.median(near) < 0.3 * np.median(random)


@pytest.mark.parametrize("subject", ["subj99", "S1"])
def test_unknown_subject_names_the_choices(subject):
    with pytest.raises(BrainLDMError, match="unknown subject.*'subj01', 'subj02', 'subj05', 'subj07'"):
        load_dataset("world", subject=subject)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(BrainLDMError, match="unknown dataset 'hcp'.*'world', 'nsd'"):
        load_dataset("hcp")


def test_to_volume(world):
    volume = world.to_volume(np.arange(world.n_voxels, dtype=np.float32))
    assert volume.data.shape == (31, 100, 100)
    assert np.isfinite(volume.data).sum() == world.n_voxels
    with pytest.raises(BrainLDMError, match="expected a vector of"):
        world.to_volume(np.zeros(3))


def test_subjects_list_matches_the_world():
    for subject in SUBJECTS:
        assert load_dataset("world", subject=subject, n_train=5, n_test=2).subject == subject


def test_voxel_upsampling_is_checked():
    with pytest.raises(BrainLDMError, match="must be 1, 2 or 3"):
        load_dataset("world", voxel_upsample=5)


@pytest.mark.slow
def test_voxel_upsampling_reaches_nsd_scale():
    ds = load_dataset("world", subject="subj01", voxel_upsample=2, n_train=5, n_test=2)
    assert 14_000 < ds.n_voxels < 20_000
    assert ds.to_volume(np.zeros(ds.n_voxels)).data.shape == (62, 200, 200)
    for roi in ROI_NAMES:
        assert ds.roi_mask(roi).sum() > 100


def test_dataset_says_what_the_world_knows(world):
    assert world.has_ground_truth and world.has_true_depth and world.has_training_pool
    ids = world.image_ids("test")[:3]
    stimuli = world.stimuli(ids)
    np.testing.assert_array_equal(stimuli.ids, ids)
    np.testing.assert_array_equal(stimuli.images, world.images(ids))
    np.testing.assert_array_equal(stimuli.depth, world.depth(ids))
    assert stimuli.captions == world.captions(ids)
    text = stimuli.describe(2)
    assert text.startswith(f"image {ids[0]}:") and f"image {ids[1]}:" in text and f"image {ids[2]}:" not in text
    assert stimuli.captions[1][-1] in text


def test_trial_counts_and_roi_sizes(world):
    counts = world.trial_counts()
    assert counts.trials == {"train": 120, "test": 30} and counts.images == {"train": 40, "test": 10}
    assert counts.repeats["train"] == [0, 0, 40]  # every training image seen three times
    _, test_ids = world.betas("test")
    np.testing.assert_array_equal(world.image_ids("test")[counts.test_order], test_ids)
    assert "train: 120 trials of 40 images" in str(counts)
    sizes = world.roi_sizes()
    assert list(sizes.index) == world.roi_names
    assert sizes["early"] == world.roi_mask("early").sum() and sizes["nsdgeneral"] == world.n_voxels


def test_with_subject_keeps_the_options(world):
    other = world.with_subject("subj05")
    assert other.subject == "subj05" and world.with_subject("subj01") is world
    assert (other.design.n_train, other.design.n_test, other.seed) == (40, 10, 0)
    np.testing.assert_array_equal(other.image_ids("test"), world.image_ids("test"))
    assert other.with_subject("subj02").design.n_train == 40
    made_directly = type(world)(subject="subj01", n_train=7, n_test=3)
    assert made_directly.with_subject("subj02").design.n_train == 7


def test_scene_drive_features_are_not_the_ldm_features():
    from brainldm.data.datasets.world.brain import GRID, scene_drive_features

    scenes = render_scenes(np.arange(4), seed=0, size=32)
    features = scene_drive_features(scenes)
    assert features["energy"].shape == (4, 4, GRID, GRID) and features["spatial"].shape == (4, 6)
    assert features["semantic"].shape[0] == 4
    np.testing.assert_allclose(features["spatial"][:, 5], scenes.n_objects)  # the last column counts objects


def test_early_voxels_see_colour_as_well_as_contrast(world):
    """Two images with the same luminance but opposite hues: contrast energy cannot tell them apart, V1 can."""
    from brainldm.data.datasets.world.brain import DRIVES, drives, low_level_drive, mix_weights, scene_drive_features

    scenes = render_scenes(np.arange(2), seed=0, size=64)
    images = np.full((2, 64, 64, 3), 128, np.uint8)
    images[0, 16:48, 16:48] = (168, 88, 128)  # reddish square
    images[1, 16:48, 16:48] = (88, 168, 128)  # greenish square of the same mean grey
    features = scene_drive_features(dataclasses.replace(scenes, images=images))
    assert features["chroma"].shape == (2, 2, 16, 16) and np.abs(features["chroma"]).max() <= 1
    truth = world.ground_truth
    parts = dict(zip(DRIVES, drives(features, truth)))
    np.testing.assert_allclose(parts["luminance"][0], parts["luminance"][1], rtol=1e-5)
    v1 = world.roi_mask("V1")
    assert np.abs(parts["chromatic"][0] - parts["chromatic"][1])[v1].mean() > 0.01
    weights = mix_weights(truth)
    np.testing.assert_allclose((weights ** 2).sum(1), 1, rtol=1e-5)
    assert weights.shape == (world.n_voxels, len(DRIVES))
    np.testing.assert_allclose(truth["chromatic_share"][v1], 0.5)
    reference = world._reference()
    low = low_level_drive(features, truth, reference)
    assert low.shape == (2, world.n_voxels) and np.abs(low[0] - low[1])[v1].mean() > 0.1
    np.testing.assert_allclose(world.true_low_level_drive(world.image_ids("test")[:3]).shape, (3, world.n_voxels))


def test_stimulus_grid_and_trial_order(world):
    import matplotlib.pyplot as plt

    from brainldm.figures.describe import stimulus_grid, trial_order

    fig = stimulus_grid(world.stimuli(world.image_ids("test")[:3]))
    assert fig.axes[0].get_ylabel() == "image" and fig.axes[3].get_ylabel().startswith("depth")
    assert len(fig.axes) == 6
    ax = trial_order(world.trial_counts(), n_trials=12)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), world.trial_counts().test_order[:12])
    plt.close("all")
