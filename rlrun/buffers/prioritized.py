"""Proportional prioritized experience replay (Schaul et al. 2016) on the uniform buffer's storage.

``P(i) = p_i^alpha / sum_k p_k^alpha`` with ``p_i = |td_i| + eps``. New transitions get the largest
priority seen so far (the paper's Algorithm 1), so each is replayed at least about once. Sampling is
stratified: the total mass is cut into ``batch_size`` equal segments and one value drawn in each.
Importance weights ``w_i = (N P(i))^-beta`` are divided by the batch's largest weight, so they only
ever scale the loss down (the paper divides by the buffer-wide largest weight, which needs a second,
min-tree and only rescales the step size; most implementations use the batch's).
"""

from __future__ import annotations

import numpy as np
import torch

from rlrun.buffers.replay import ReplayBuffer
from rlrun.buffers.sum_tree import SumTree
from rlrun.schedules import LinearSchedule


class PrioritizedReplayBuffer(ReplayBuffer):
    """Same storage and ``sample()`` as :class:`ReplayBuffer`; only which slots and their weights differ."""

    def __init__(
        self,
        capacity,
        obs_shape,
        obs_dtype,
        batch_size,
        device,
        seed,
        *,
        alpha: float,
        beta: LinearSchedule,
        eps: float,
        observations=None,
        gamma: float = 0.99,
        n_step: int = 1,
        num_envs: int = 1,
    ):
        super().__init__(
            capacity,
            obs_shape,
            obs_dtype,
            batch_size,
            device,
            seed,
            observations,
            gamma=gamma,
            n_step=n_step,
            num_envs=num_envs,
        )
        self.alpha = alpha
        self.beta_schedule = beta
        self.beta = beta(0)
        self.eps = eps
        self.tree = SumTree(capacity)
        self.max_priority = 1.0  # largest p_i seen so far (before the alpha power)
        self._weights = np.zeros(batch_size, dtype=np.float32)
        self._weights_tensor = torch.from_numpy(self._weights)
        self._strata = np.arange(batch_size, dtype=np.float64)

    def add(self, obs, actions, rewards, next_obs, terminated, discounts=None) -> np.ndarray:
        """Store as the uniform buffer does; each stored (n-step) transition gets the largest priority so far."""
        slots = super().add(obs, actions, rewards, next_obs, terminated, discounts)
        self.tree.update(slots, np.full(len(slots), self.max_priority**self.alpha))
        return slots

    def sample_indices(self, step: int) -> tuple[np.ndarray, torch.Tensor]:
        total = self.tree.total
        targets = (self._strata + self.rng.random(self.batch_size)) * (total / self.batch_size)
        indices = np.minimum(self.tree.find(targets), self.size - 1)
        probabilities = self.tree.leaves[indices] / total
        self.beta = self.beta_schedule(step)
        weights = (self.size * probabilities) ** -self.beta
        np.divide(weights, weights.max(), out=self._weights, casting="unsafe")
        return indices, self._weights_tensor.to(self.device, non_blocking=True)

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        priorities = np.abs(td_errors).astype(np.float64) + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(indices, priorities**self.alpha)

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "priorities": torch.from_numpy(self.tree.leaves[: self.size]),
            "max_priority": self.max_priority,
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.max_priority = state["max_priority"]
        self.tree.update(np.arange(self.size), state["priorities"].numpy())

    def metrics(self) -> dict[str, float]:
        return {"train/beta": self.beta, "buffer/max_priority": self.max_priority}
