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
    fig = maps.flatmaps(ds, {"a": rng.random(ds.n_voxels), "b": rng.random(ds.n_voxels),
                             "c": rng.random(ds.n_voxels)}, maps.MapScale(label="r"), maps.MapLayout(ncols=2))
    titled = [ax for ax in fig.axes if ax.get_title() in ("a", "b", "c")]
    assert len(titled) == 3
    assert any(ax.get_xlabel() == "r" for ax in fig.axes)  # the colour bar
    with pytest.raises(BrainLDMError, match="one value per voxel"):
        maps.flatmaps(ds, {"a": np.zeros(3)})
    with pytest.raises(BrainLDMError, match="at least one map"):
        maps.flatmaps(ds, {})


def test_category_map_checks_labels(rng):
    ds = VolumeDataset()
    fig = maps.category_map(ds, rng.integers(-1, 2, ds.n_voxels), ["z", "c"], title="best")
    legend = fig.legends[0]
    assert [t.get_text().split(" (")[0] for t in legend.get_texts()] == ["z", "c"]
    with pytest.raises(BrainLDMError, match="indices"):
        maps.category_map(ds, np.full(ds.n_voxels, 2), ["z", "c"])
    panels = maps.category_map(ds, {"early": np.zeros(ds.n_voxels, int), "late": np.ones(ds.n_voxels, int)},
                               ["z", "c"], title="best by stage")
    assert sum(ax.get_title() in ("early", "late") for ax in panels.axes) == 2
    assert [t.get_text() for t in panels.legends[0].get_texts()] == ["z", "c"]  # one legend, no counts
    assert panels._suptitle.get_text() == "best by stage"


def test_crop_keeps_the_pixels_of_the_box():
    image = np.arange(20 * 10).reshape(20, 10)  # rows from top (y = 20) to bottom (y = 0)
    part, extent = maps._crop(image, (0, 10, 0, 20), (2, 5, 15, 19))
    assert extent == (2, 5, 15, 19)
    np.testing.assert_array_equal(part, image[1:5, 2:5])


def test_viewer_needs_a_surface():
    with pytest.raises(BrainLDMError, match="WebGL viewer needs a pycortex subject"):
        maps.webgl_viewer(VolumeDataset(), {"a": np.zeros(VolumeDataset().n_voxels)}, "x")


@pytest.mark.slow
def test_world_flatmaps_and_offline_viewer(world, tmp_path, rng, monkeypatch):
    """The first call renders S1's layers with inkscape and builds its WebGL surfaces (about a minute)."""
    values = rng.random(world.n_voxels)
    fig = maps.flatmaps(world, {"a": values, "b": values}, layout=maps.MapLayout(ncols=2))
    assert sum(ax.get_title() in ("a", "b") for ax in fig.axes) == 2
    index = maps.webgl_viewer(world, {"a": values, "b": -values}, "test", scale=maps.MapScale("RdBu_r", -1, 1),
                              out_dir=tmp_path / "viewer")
    html = index.read_text()
    assert not re.findall(r'<script[^>]+src="https?://', html) and not re.findall(r'<link[^>]+href="https?://', html)
    assert len(list((tmp_path / "viewer" / "data").glob("*.png"))) == 2
    assert list((tmp_path / "viewer").glob("*.ctm"))
    (tmp_path / "book" / "chapters").mkdir(parents=True)  # a project root: where the book's _static folder is
    monkeypatch.setenv("BRAINLDM_ROOT", str(tmp_path / "book"))
    frame = maps.viewer_frame(world, {"a": values}, "framed", scale=maps.MapScale(vmin=0, vmax=1))
    assert (tmp_path / "book/_static/viewers/framed/index.html").exists()
    assert '<iframe src="../_static/viewers/framed/index.html"' in frame.data and "(1 maps," in frame.data


def test_map_scale_fills_unset_limits_from_the_maps():
    values = [np.arange(101.0), np.array([np.nan, 50.0])]
    assert maps.MapScale().limits(values) == pytest.approx((1.0, 99.0), abs=0.02)
    assert maps.MapScale(vmin=-1).limits(values)[0] == -1
    assert maps.MapScale(vmin=0, vmax=2).limits([np.full(3, np.nan)]) == (0, 2)
    assert maps.MapScale().limits([np.full(3, np.nan)]) == (0.0, 1.0)


def test_panel_figures(rng):
    import pandas as pd

    from brainldm.figures import panels

    table = pd.DataFrame({"stage": ["early"] * 4 + ["late"] * 4, "layer": ["down1", "mid"] * 4,
                          "roi": (["early"] * 2 + ["ventral"] * 2) * 2, "mean": rng.random(8)})
    table["ci_low"], table["ci_high"] = table["mean"] - 0.1, table["mean"] + 0.1
    fig = panels.ci_panels(table, "stage", "layer", hue="roi", ylabel="r")
    assert [ax.get_title() for ax in fig.axes] == ["stage early", "stage late"]
    assert fig.axes[0].get_legend() is None and fig.axes[1].get_legend() is not None
    assert len(fig.axes[0].patches) == 4  # two layers x two ROIs
    with pytest.raises(BrainLDMError, match="needs the column 'subject'"):
        panels.ci_panels(table, "subject", "layer")
    ax = panels.identity_scatter(np.array([1.0, 2.0, 3.5]), np.array([1.0, 2.0, 3.0]), title="NC")
    assert ax.get_title().startswith("NC: r = 0.9")
    pairs = pd.DataFrame({"pair": ["z from early", "c from ventral"], "oracle": [0.8, 0.6], "measured": [0.5, 0.3]})
    bars = panels.oracle_bars(pairs)
    assert sorted(p.get_height() for p in bars.patches) == [0.3, 0.5, 0.6, 0.8]
    with pytest.raises(BrainLDMError, match="oracle_bars needs"):
        panels.oracle_bars(pairs.drop(columns="oracle"))

