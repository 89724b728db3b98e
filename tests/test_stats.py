"""rlrun.stats against hand-computed cases and against rliable's own metric functions."""

from __future__ import annotations

import numpy as np
import pytest
from rliable import library, metrics

from rlrun.stats import (
    Estimate,
    curve_band,
    improvement,
    interval_estimates,
    iqm,
    performance_profile,
    probability_of_improvement,
)


def test_the_interquartile_mean_drops_a_quarter_at_each_end():
    # 8 runs: drop the 2 lowest (-100, 1) and the 2 highest (7, 500); the middle four are 2, 3, 5, 6
    assert iqm(np.array([5.0, -100, 3, 500, 1, 7, 2, 6])) == pytest.approx(4.0)
    assert iqm(np.array([1.0, 2, 9])) == pytest.approx(4.0), "under 4 runs nothing is dropped: the mean"
    assert iqm(np.array([0.0, 10, 20, 30, 1000])) == pytest.approx(20.0), "5 runs: int(5/4) = 1 dropped each end"


def test_the_fast_statistics_equal_rliable_s_metrics():
    rng = np.random.default_rng(3)
    for runs in (1, 3, 5, 8, 13):
        scores = rng.normal(size=(runs, 1))
        assert iqm(scores[:, 0]) == pytest.approx(metrics.aggregate_iqm(scores))
        other = np.round(rng.normal(size=(runs + 2, 1)), 1)  # rounded: ties happen
        assert improvement(np.round(scores, 1), other) == pytest.approx(
            metrics.probability_of_improvement(np.round(scores, 1), other)
        )
    curves = rng.normal(size=(6, 1, 4))
    assert iqm(curves[:, 0]) == pytest.approx([metrics.aggregate_iqm(curves[..., k]) for k in range(4)])


def test_an_interval_covers_the_true_mean_in_most_repeated_draws():
    rng = np.random.default_rng(0)
    draws, covered = 100, 0
    for _ in range(draws):
        estimate = interval_estimates(rng.normal(10.0, 3.0, size=10), reps=500)["mean"]
        assert estimate.low <= estimate.value <= estimate.high
        covered += estimate.low <= 10.0 <= estimate.high
    # a 95% percentile bootstrap over 10 runs covers somewhat less than 95%; never as little as 80%
    assert 0.8 <= covered / draws <= 1.0, covered


def test_the_same_runs_give_the_same_interval_and_more_runs_a_narrower_one():
    rng = np.random.default_rng(1)
    few, many = rng.normal(size=5), rng.normal(size=50)
    assert interval_estimates(few) == interval_estimates(few), "seeded bootstrap"
    width = {name: e.high - e.low for name, e in interval_estimates(few).items()}
    assert all(e.high - e.low < width[name] for name, e in interval_estimates(many).items())
    assert interval_estimates([]) is None
    single = interval_estimates([7.0])
    assert single["iqm"] == single["mean"] == Estimate(7.0, 7.0, 7.0), "one run: nothing to resample"


def test_dominating_runs_improve_with_probability_one():
    better, worse = [10.0, 11, 12, 13, 14], [1.0, 2, 3, 4, 9.9]
    assert probability_of_improvement(better, worse) == Estimate(1.0, 1.0, 1.0)
    assert probability_of_improvement(worse, better) == Estimate(0.0, 0.0, 0.0)
    same = probability_of_improvement(worse, worse)
    assert same.value == 0.5 and same.low < 0.5 < same.high
    # 2 runs against 2: pairs (3>1, 3>4 no, 5>1, 5>4) = 3 of 4
    assert probability_of_improvement([3.0, 5.0], [1.0, 4.0]).value == pytest.approx(0.75)


def test_a_curve_band_holds_its_center_and_a_profile_counts_runs_above_each_threshold():
    samples = np.array([[0.0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 100]])
    band = curve_band(samples, "iqm")
    assert band.center == pytest.approx([1.5, 2.5, 3.5]) and np.all(band.low <= band.center)
    assert np.all(band.center <= band.high)
    assert curve_band(samples, "mean").center == pytest.approx([1.5, 2.5, 27.25])
    profiles = performance_profile({"a": [1.0, 2, 3, 4], "b": [10.0, 20, 30, 40]}, np.array([0.0, 2.5, 35]))
    assert profiles["a"].center == pytest.approx([1, 0.5, 0]) and profiles["b"].center == pytest.approx([1, 1, 0.25])
    reference, _ = library.create_performance_profile({"a": np.array([[1.0], [2], [3], [4]])}, [0.0, 2.5, 35], reps=10)
    assert profiles["a"].center == pytest.approx(reference["a"])
