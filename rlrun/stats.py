"""How sure a comparison of a few seeds is: rliable's estimators (Agarwal et al. 2021, "Deep Reinforcement
Learning at the Edge of the Statistical Precipice", NeurIPS).

Every number here is a point estimate with a 95% stratified bootstrap confidence interval over runs, computed by
rliable's ``get_interval_estimates`` (one task per config: the strata are the runs of that config):

- ``iqm``: the interquartile mean, the mean of the middle half of the runs (``int(n/4)`` dropped at each end, as
  ``scipy.stats.trim_mean(x, 0.25)``), less swayed by one lucky or broken seed than the mean;
- ``mean``: the plain mean;
- ``probability_of_improvement``: P(X > Y), the chance that a run of X beats a run of Y (ties count half; the
  Mann-Whitney U statistic over m x n), bootstrapped over the runs of both sides independently;
- ``performance_profile``: the fraction of runs whose score exceeds each threshold tau.

rliable's own metric functions call scipy once per bootstrap sample and per curve point; the statistics passed
to its bootstrap here are numpy versions that give the same numbers (tests/test_stats.py holds them equal to
``rliable.metrics``) in one vectorised call, so a sweep report takes a second, not minutes.
rliable (with arch, pandas, scipy) is imported only when an estimate is asked for: it takes seconds to import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_REPS = 2000  # rliable's examples use 2000 for curves and profiles; enough for a 95% interval's ends
SEED = 0  # the bootstrap's random state: the same runs always give the same interval


# ----------------------------------------------------------------------------- the statistics
def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean over the leading (runs) axis, per remaining position: ``trim_mean(scores, 0.25)``."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64), axis=0)
    cut = int(0.25 * ordered.shape[0])
    return ordered[cut : ordered.shape[0] - cut].mean(axis=0)


def mean(scores: np.ndarray) -> np.ndarray:
    return np.asarray(scores, dtype=np.float64).mean(axis=0)


AGGREGATES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"iqm": iqm, "mean": mean}


def improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 over every pair (run of X, run of Y), averaged over tasks (columns)."""
    x = np.asarray(scores_x, dtype=np.float64)[:, None, :]
    y = np.asarray(scores_y, dtype=np.float64)[None, :, :]
    return float(np.mean((x > y) + 0.5 * (x == y)))


# ----------------------------------------------------------------------------- estimates with intervals
@dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95% bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return self.format()

    def format(self, digits: int = 1) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _estimate(score_dict: Mapping, statistic: Callable, reps: int) -> tuple[dict, dict]:
    """rliable's point estimates and 95% stratified bootstrap intervals (percentile method) of ``statistic``.

    rliable's StratifiedBootstrap draws its resamples from numpy's global random state (``np.random.choice``), not
    from the ``random_state`` it is given: that state is seeded with SEED for the call, the caller's put back after.
    """
    from rliable import library

    logging.getLogger("absl").setLevel(logging.WARNING)  # rliable logs "Calculating estimates for ..." at INFO
    saved = np.random.get_state()
    np.random.seed(SEED)
    try:
        return library.get_interval_estimates(score_dict, statistic, reps=reps, confidence_interval_size=CONFIDENCE)
    finally:
        np.random.set_state(saved)


def _by_runs(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Scores as rliable's (runs, tasks, ...) matrix: one task, the runs along the first axis."""
    scores = np.asarray(scores, dtype=np.float64)
    return scores[:, None] if scores.ndim == 1 else scores[:, None, :]


def interval_estimates(scores: Sequence[float], reps: int = BOOTSTRAP_REPS) -> Optional[dict[str, Estimate]]:
    """IQM and mean of one config's runs (a score per run), each with its interval; None without runs."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return None
    names = list(AGGREGATES)
    statistic = lambda runs: np.array([AGGREGATES[name](runs.reshape(-1)) for name in names])  # noqa: E731
    points, intervals = _estimate({"runs": _by_runs(scores)}, statistic, reps)
    return {
        name: Estimate(float(points["runs"][i]), float(intervals["runs"][0, i]), float(intervals["runs"][1, i]))
        for i, name in enumerate(names)
    }


def probability_of_improvement(
    scores_x: Sequence[float], scores_y: Sequence[float], reps: int = BOOTSTRAP_REPS
) -> Estimate:
    """P(X > Y) with its interval, the runs of X and of Y resampled independently."""
    pair = (_by_runs(scores_x), _by_runs(scores_y))
    points, intervals = _estimate({"x,y": pair}, improvement, reps)
    return Estimate(float(points["x,y"]), float(np.ravel(intervals["x,y"])[0]), float(np.ravel(intervals["x,y"])[1]))


@dataclass
class Band:
    """An aggregate curve over runs: its center at each point and the interval around it."""

    center: np.ndarray
    low: np.ndarray
    high: np.ndarray


def curve_band(samples: np.ndarray, how: str, reps: int = BOOTSTRAP_REPS) -> Band:
    """``samples`` is (runs, points): the IQM or mean over runs at each point, with its pointwise interval."""
    statistic = AGGREGATES[how]
    per_point = lambda runs: statistic(runs.reshape(-1, runs.shape[-1]))  # noqa: E731 - (runs, 1, points) -> points
    points, intervals = _estimate({"runs": _by_runs(samples)}, per_point, reps)
    return Band(np.asarray(points["runs"]), intervals["runs"][0], intervals["runs"][1])


def performance_profile(
    scores: Mapping[str, Sequence[float]], taus: np.ndarray, reps: int = BOOTSTRAP_REPS
) -> dict[str, Band]:
    """Per config, the fraction of its runs scoring above each tau, with its interval (rliable's score
    distribution: one task, so it is the runs' empirical tail distribution)."""
    taus = np.asarray(taus, dtype=np.float64)
    statistic = lambda runs: np.mean(runs.reshape(-1)[:, None] > taus[None, :], axis=0)  # noqa: E731
    points, intervals = _estimate({name: _by_runs(values) for name, values in scores.items()}, statistic, reps)
    return {name: Band(np.asarray(points[name]), intervals[name][0], intervals[name][1]) for name in scores}
