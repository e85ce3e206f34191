"""Maps of per-voxel values: volume slices (NSD-like), flatmaps and the WebGL viewer (world)."""

import re

import matplotlib
import nibabel as nib
import numpy as np
import pytest

from brainldm.figures import maps
from brainldm.errors import BrainLDMError

matplotlib.use("Agg")


class VolumeDataset:
    """The part of the dataset interface maps need, with NIfTI volumes like NSD's."""

    name = "fake"

    def __init__(self, shape=(6, 7, 5)):
        self.mask = np.zeros(shape, bool)
        self.mask[1:5, 2:6, 1:4] = True
        self.n_voxels = int(self.mask.sum())

    def to_volume(self, values):
        volume = np.full(self.mask.shape, np.nan, np.float32)
        volume[self.mask] = values
        return nib.Nifti1Image(volume, np.diag([1.8, 1.8, 1.8, 1.0]))


def test_volume_maps_draw_one_panel_per_map_and_a_shared_colour_bar(rng):
    ds = VolumeDataset()
    assert not maps.has_surface(ds)
    fig = maps.brain_maps(ds, {"a": rng.random(ds.n_voxels), "b": rng.random(ds.n_voxels),
                               "c": rng.random(ds.n_voxels)}, ncols=2, label="r")
    titled = [ax for ax in fig.axes if ax.get_title() in ("a", "b", "c")]
    assert len(titled) == 3
    assert any(ax.get_xlabel() == "r" for ax in fig.axes)  # the colour bar
    with pytest.raises(BrainLDMError, match="one value per voxel"):
        maps.brain_maps(ds, {"a": np.zeros(3)})
    with pytest.raises(BrainLDMError, match="at least one map"):
        maps.brain_maps(ds, {})


def test_category_map_checks_labels(rng):
    ds = VolumeDataset()
    fig = maps.category_map(ds, rng.integers(-1, 2, ds.n_voxels), ["z", "c"], title="best")
    legend = fig.legends[0]
    assert [t.get_text().split(" (")[0] for t in legend.get_texts()] == ["z", "c"]
    with pytest.raises(BrainLDMError, match="indices"):
        maps.category_map(ds, np.full(ds.n_voxels, 2), ["z", "c"])


def test_crop_keeps_the_pixels_of_the_box():
    image = np.arange(20 * 10).reshape(20, 10)  # rows from top (y = 20) to bottom (y = 0)
    part, extent = maps._crop(image, (0, 10, 0, 20), (2, 5, 15, 19))
    assert extent == (2, 5, 15, 19)
    np.testing.assert_array_equal(part, image[1:5, 2:5])


def test_viewer_needs_a_surface():
    with pytest.raises(BrainLDMError, match="WebGL viewer needs a pycortex subject"):
        maps.webgl_viewer(VolumeDataset(), {"a": np.zeros(VolumeDataset().n_voxels)}, "x")


@pytest.mark.slow
def test_world_flatmaps_and_offline_viewer(world, tmp_path, rng):
    """The first call renders S1's layers with inkscape and builds its WebGL surfaces (about a minute)."""
    values = rng.random(world.n_voxels)
    fig = maps.brain_maps(world, {"a": values, "b": values}, ncols=2)
    assert sum(ax.get_title() in ("a", "b") for ax in fig.axes) == 2
    index = maps.webgl_viewer(world, {"a": values, "b": -values}, "test", out_dir=tmp_path / "viewer")
    html = index.read_text()
    assert not re.findall(r'<script[^>]+src="https?://', html) and not re.findall(r'<link[^>]+href="https?://', html)
    assert len(list((tmp_path / "viewer" / "data").glob("*.png"))) == 2
    assert list((tmp_path / "viewer").glob("*.ctm"))
