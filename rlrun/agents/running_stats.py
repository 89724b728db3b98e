"""Running statistics for observation normalisation and reward scaling (the semantics of SB3's VecNormalize).

They live in the agent, not in an env wrapper: the agent saves them in ``last.pt`` and ``best.pt`` and applies
them in ``act_greedy``, so greedy evaluation, ``mode=evaluate`` and videos see what the policy was trained on,
with the statistics frozen (only training steps update them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

EPSILON = 1e-8  # added to variances before the square root


class RunningMeanStd:
    """Mean and variance of everything seen so far, merged batch by batch (Chan et al.'s parallel formula).

    ``count`` starts at a tiny positive number, so the first batch sets the statistics almost wholly.
    """

    def __init__(self, shape: tuple[int, ...] = ()):
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = 1e-4

    def update(self, batch: np.ndarray) -> None:
        """Fold in a batch whose first axis runs over samples."""
        batch_mean, batch_var, batch_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        # np.array: with shape () the arithmetic above leaves NumPy scalars, which torch does not take
        return {
            "mean": torch.from_numpy(np.array(self.mean, dtype=np.float64)),
            "var": torch.from_numpy(np.array(self.var, dtype=np.float64)),
            "count": float(self.count),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.var = state["mean"].numpy().copy(), state["var"].numpy().copy()
        self.count = state["count"]


class ObservationNormalizer:
    """``clip((obs - mean) / sqrt(var + eps), -clip, clip)`` with running statistics over training observations."""

    def __init__(self, obs_dim: int, clip: float):
        self.stats = RunningMeanStd((obs_dim,))
        self.clip = clip

    def update(self, obs: np.ndarray) -> None:
        self.stats.update(obs.astype(np.float64))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        scaled = (obs - self.stats.mean) / np.sqrt(self.stats.var + EPSILON)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return self.stats.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state)


class RewardScaler:
    """Rewards divided by the running standard deviation of the discounted return (not centred, so the sign of
    a reward is kept), then clipped.

    Each sub-env's discounted return is accumulated here and restarts when its episode ends.
    """

    def __init__(self, gamma: float, clip: float):
        self.stats = RunningMeanStd(())
        self.gamma = gamma
        self.clip = clip
        self.returns: np.ndarray | None = None  # per sub-env, known at the first call

    def __call__(self, rewards: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Update the statistics with these rewards and return them scaled."""
        if self.returns is None or len(self.returns) != len(rewards):
            self.returns = np.zeros(len(rewards))
        self.returns = self.returns * self.gamma + rewards
        self.stats.update(self.returns)
        scaled = np.clip(rewards / np.sqrt(self.stats.var + EPSILON), -self.clip, self.clip)
        self.returns[done] = 0.0
        return scaled

    def state_dict(self) -> dict[str, Any]:
        returns = np.zeros(0) if self.returns is None else self.returns
        return {**self.stats.state_dict(), "returns": torch.from_numpy(returns.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state)
        self.returns = state["returns"].numpy().copy() if len(state["returns"]) else None
