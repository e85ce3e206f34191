"""Table 1 over subjects (chapter 7): means, paired changes, steps and how consistent each change is."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from brainldm.errors import ParameterError
from brainldm.figures.reference import table1
from brainldm.generate import table1 as t1
from brainldm.models.ldm import SamplerSettings

METHODS = ("baseline", "+T", "+T+G", "+T+G+D")
SHIFT = {"baseline": 0.0, "+T": 0.2, "+T+G": 0.25, "+T+G+D": 0.1}  # UP: the same shift on every image
UP, DOWN, NOISE = "CLIP early", "CNN late", "Inception"


def _comparison(subject, seed, n=12):
    """Per-image scores: metric UP shifts every image by SHIFT; DOWN lowers it; NOISE is noise."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 0.6, n)
    rows = []
    for method in METHODS:
        scores = {UP: base + SHIFT[method], DOWN: base - SHIFT[method], NOISE: rng.uniform(0, 1, n)}
        for metric, values in scores.items():
            rows.append(pd.DataFrame({"subject": subject, "method": method, "metric": metric,
                                      "image": np.arange(n), "score": values}))
    return SimpleNamespace(subject=subject, methods=METHODS, table=pd.concat(rows, ignore_index=True))


@pytest.fixture
def results():
    settings = SimpleNamespace(sampler=SamplerSettings(num_inference_steps=4, n_samples=1))
    return t1.Table1Results((_comparison("subj01", 0), _comparison("subj02", 1)), settings)


def test_step_differences_of_the_reports_table():
    paper = table1().rename(index={"CVPR baseline": "baseline"})
    steps = t1.step_differences(paper)
    assert list(steps.index) == list(t1.TABLE1_STEPS) and list(steps.columns) == list(paper.columns)
    assert steps.loc["+G (over +T)", "CLIP early"] == pytest.approx(0.866 - 0.885)
    assert steps.loc["+D (over +T+G)", "CLIP late"] == pytest.approx(0.866 - 0.853)
    assert list(t1.step_differences(paper.loc[["baseline", "+T", "+T+G"]]).index) == ["+G (over +T)"]


def test_means_are_over_images_then_subjects(results):
    assert results.subjects == ["subj01", "subj02"] and results.methods == METHODS
    assert results.describe() == "12 test images, 1 sample(s) each, 4 DDIM steps, 2 subject(s) (subj01, subj02)"
    means = results.means()
    table = results.table
    expected = table.groupby(["method", "subject", "metric"])["score"].mean().groupby(["method", "metric"]).mean()
    assert list(means.index) == list(METHODS)
    for method in METHODS:
        for metric in (UP, DOWN, NOISE):
            assert means.loc[method, metric] == pytest.approx(expected[(method, metric)])
    assert means.loc["+T", UP] - means.loc["baseline", UP] == pytest.approx(0.2)
    per_subject, across = results.summary()
    assert list(per_subject.index.get_level_values("subject").unique()) == ["subj01", "subj02"]
    assert across.loc["+T", (UP, "sd")] == pytest.approx(per_subject.xs("+T", level="method")[UP].std(ddof=1))


def test_changes_steps_and_consistency(results):
    changes = results.changes().set_index(["subject", "method", "metric"])
    assert changes.loc[("mean", "+T", UP), "change"] == pytest.approx(0.2)
    assert changes.loc[("subj02", "+T+G+D", DOWN), "change"] == pytest.approx(-0.1)
    steps = results.steps().set_index(["subject", "method", "metric"])
    assert steps.loc[("mean", "+G (over +T)", UP), "change"] == pytest.approx(0.05)
    assert steps.loc[("subj01", "+D (over +T+G)", UP), "change"] == pytest.approx(-0.15)
    counts = results.consistency()
    # UP is raised and DOWN lowered beyond any CI (the same shift on every image); noise rarely is
    assert (counts["raised"] >= 1).all() and (counts["lowered"] >= 1).all() and (counts["columns"] == 3).all()
    assert list(counts.index.get_level_values("subject").unique()) == ["subj01", "subj02", "mean"]
    mean = results.consistency(subject="mean")
    assert list(mean.index) == ["+T", "+T+G", "+T+G+D"]
    changes = results.changes()
    noise = (changes["metric"] == NOISE) & (changes["subject"] == "mean")
    expected = int((changes[noise]["excludes_zero"] & (changes[noise]["change"] > 0)).sum())
    assert mean["raised"].sum() == 3 + expected


def test_steps_need_both_methods_of_a_step():
    two = t1.Table1Results((SimpleNamespace(subject="s", methods=("baseline", "+T"),
                                            table=_comparison("s", 0).table.query("method in ['baseline', '+T']")),),
                           None)
    with pytest.raises(ParameterError, match="no step"):
        two.steps()


def test_compare_subjects_runs_each_subject_with_one_settings(monkeypatch):
    made = []

    class FakeRun:
        def __init__(self, ds, models, settings=None):
            made.append((ds, models, settings))
            self.settings = settings or "defaults"

        def compare(self, methods):
            return SimpleNamespace(subject=made[-1][0], methods=tuple(methods), table=None)

    monkeypatch.setattr(t1, "ExtensionRun", FakeRun)
    results = t1.compare_subjects(["subj01", "subj02"], "models", "settings", methods=("baseline", "+T"))
    assert made == [("subj01", "models", "settings"), ("subj02", "models", "settings")]
    assert results.subjects == ["subj01", "subj02"] and results.methods == ("baseline", "+T")
    assert results.settings == "settings"
    with pytest.raises(ParameterError, match="at least one"):
        t1.compare_subjects([], "models")
