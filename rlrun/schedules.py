"""Exploration schedules as pure functions of training progress.

Each schedule maps (env step, finished episodes) to a value with a closed form, so its whole state is
those two counters: a checkpoint that stores the counters restores the schedule exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig


@dataclass(frozen=True)
class LinearSchedule:
    """Straight line from ``start`` to ``end`` over ``duration`` steps, then flat."""

    start: float
    end: float
    duration: int

    def __call__(self, step: int, episode: int = 0) -> float:
        fraction = min(step / self.duration, 1.0)
        return self.start + fraction * (self.end - self.start)


@dataclass(frozen=True)
class ExponentialSchedule:
    """``end + (start - end) * exp(-step / decay)``."""

    start: float
    end: float
    decay: float

    def __call__(self, step: int, episode: int = 0) -> float:
        return self.end + (self.start - self.end) * math.exp(-step / self.decay)


@dataclass(frozen=True)
class MultiplicativeSchedule:
    """``start * factor ** episodes``, floored at ``end``: the per-episode decay of the notebooks."""

    start: float
    end: float
    factor: float

    def __call__(self, step: int, episode: int = 0) -> float:
        return max(self.end, self.start * self.factor**episode)


@dataclass(frozen=True)
class ConstantSchedule:
    value: float

    def __call__(self, step: int, episode: int = 0) -> float:
        return self.value


def build_schedule(cfg: DictConfig):
    """The schedule named by ``cfg.name`` with the group's parameters."""
    if cfg.name == "linear":
        return LinearSchedule(cfg.start, cfg.end, cfg.duration)
    if cfg.name == "exponential":
        return ExponentialSchedule(cfg.start, cfg.end, cfg.decay)
    if cfg.name == "multiplicative":
        return MultiplicativeSchedule(cfg.start, cfg.end, cfg.factor)
    if cfg.name == "constant":
        return ConstantSchedule(cfg.value)
    raise ValueError(f"unknown schedule {cfg.name!r}")  # validate() rejects this earlier
