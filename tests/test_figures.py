"""The shared figures: CI bars (heights and error bars read back from the Axes) and the paper-beside table."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer, ErrorbarContainer

from brainldm.errors import BrainLDMError
from brainldm.figures import ci_bars, paper_beside, viz


@pytest.fixture
def table():
    return pd.DataFrame({"metric": ["early", "late", "early", "late"], "method": ["z", "z", "c", "c"],
                         "mean": [0.8, 0.6, 0.55, 0.9], "ci_low": [0.7, 0.5, 0.5, 0.85],
                         "ci_high": [0.85, 0.75, 0.6, 0.92]})


def _bars(ax):
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def _error_extents(ax):
    """(low, high) of every error bar, in drawing order."""
    extents = []
    for container in (c for c in ax.containers if isinstance(c, ErrorbarContainer)):
        _, _, (lines,) = container.lines
        extents += [(float(min(s[:, 1])), float(max(s[:, 1]))) for s in lines.get_segments()]
    return extents


def test_ci_bars_draws_each_hue_as_bars_with_their_intervals(table):
    ax = ci_bars(table, x="metric", hue="method", chance=0.5, title="t", ylabel="y")
    bars = _bars(ax)
    assert [b.get_label() for b in bars] == ["z", "c"]
    heights = [[p.get_height() for p in b.patches] for b in bars]
    np.testing.assert_allclose(heights, [[0.8, 0.6], [0.55, 0.9]])
    np.testing.assert_allclose(_error_extents(ax), [(0.7, 0.85), (0.5, 0.75), (0.5, 0.6), (0.85, 0.92)])
    # groups along x in order of appearance, hues side by side within a group
    centres = [[p.get_x() + p.get_width() / 2 for p in b.patches] for b in bars]
    np.testing.assert_allclose(centres, [[-0.2, 0.8], [0.2, 1.2]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["early", "late"]
    assert [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"] == [0.5]
    assert ax.get_title() == "t" and ax.get_ylabel() == "y"
    plt.close(ax.figure)


def test_ci_bars_without_hue_without_intervals_and_with_missing_columns(table):
    one = table[table["method"] == "z"].drop(columns=["ci_low", "ci_high"])
    ax = ci_bars(one, x="metric")
    (bars,) = _bars(ax)
    np.testing.assert_allclose([p.get_height() for p in bars.patches], [0.8, 0.6])
    assert _error_extents(ax) == [] and ax.get_legend() is None
    plt.close(ax.figure)
    with pytest.raises(BrainLDMError, match="needs the columns"):
        ci_bars(table.drop(columns=["mean"]), x="metric")


def test_ci_bars_leaves_a_gap_where_a_hue_lacks_a_group(table):
    ax = ci_bars(table.iloc[:3], x="metric", hue="method")
    heights = [[p.get_height() for p in b.patches] for b in _bars(ax)]
    assert heights[0] == [0.8, 0.6] and heights[1][0] == 0.55 and np.isnan(heights[1][1])
    plt.close(ax.figure)


def test_paper_beside_adds_the_difference_of_shared_rows(capsys):
    paper = pd.DataFrame({"A": [0.7, 0.8], "B": [0.6, 0.9], "C": [0.5, 0.5]}, index=["base", "+T"])
    ours = pd.DataFrame({"B": [0.65, 0.75], "A": [0.75, 0.5], "extra": [1, 1]}, index=["base", "ours only"])
    table = paper_beside(ours, paper, ours_label="run", paper_label="report", digits=2)
    assert list(table.columns) == ["A", "B"]  # the shared columns, in the paper's order
    assert list(table.index.get_level_values("source").unique()) == ["report", "run", "difference"]
    np.testing.assert_allclose(table.loc[("difference", "base")], [0.05, 0.05])
    assert list(table.loc["difference"].index) == ["base"]  # only rows both have
    np.testing.assert_allclose(table.loc[("run", "ours only")], [0.5, 0.75])
    printed = capsys.readouterr().out
    assert "difference" in printed and "0.05" in printed and "0.050" not in printed


def test_paper_beside_takes_a_series_as_one_row():
    paper = pd.DataFrame({"A": [0.7]}, index=["base"])
    table = paper_beside(pd.Series({"A": 0.9}, name="base"), paper)
    np.testing.assert_allclose(table.loc[("difference", "base"), "A"], 0.2)
    with pytest.raises(BrainLDMError, match="share none"):
        paper_beside(pd.DataFrame({"Z": [1.0]}, index=["base"]), paper)


def test_bars_by_roi_draws_ci_bars_with_reference_ticks():
    table = pd.DataFrame({"roi": ["V1", "V2", "V1", "V2"], "subject": ["s1", "s1", "s2", "s2"],
                          "median": [1.0, 2.0, 3.0, 4.0], "q25": [0.5, 1.5, 2.5, 3.5], "q75": [1.5, 2.5, 3.5, 4.5],
                          "truth": [1.1, 2.1, 3.1, 4.1]})
    fig = viz.bars_by_roi(table, "median", "q25", "q75", reference="truth")
    ax = fig.axes[0]
    np.testing.assert_allclose([[p.get_height() for p in b.patches] for b in _bars(ax)], [[1, 2], [3, 4]])
    np.testing.assert_allclose(_error_extents(ax)[0], (0.5, 1.5))
    ticks = np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    ticks = ticks[np.argsort(ticks[:, 0])]
    np.testing.assert_allclose(ticks[:, 1], [1.1, 3.1, 2.1, 4.1])  # each on its own bar
    plt.close(fig)


def test_image_grid_takes_rows_by_label_and_reconstruction_grid_adds_the_seen_images(world):
    images = np.zeros((3, 8, 8, 3), np.uint8)
    fig = viz.image_grid({"a": images, "b": images[:2]})
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == ["a", "b"]
    plt.close(fig)
    ids = world.image_ids("test")[:4]
    fig = viz.reconstruction_grid(world, ids, {"X_z": np.zeros((4, 8, 8, 3), np.uint8)}, n_shown=2)
    assert len(fig.axes) == 4 and [ax.get_ylabel() for ax in fig.axes[::2]] == ["seen", "X_z"]
    assert fig.axes[0].get_title().replace("\n", " ") == world.captions(ids[:1])[0][0]
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), world.images(ids[:1])[0])
    plt.close(fig)
