"""Uniform experience replay on preallocated NumPy arrays.

Storage is one array per field of shape ``(capacity, ...)`` in the env's own dtype, filled as a ring.
A sampled batch is gathered into preallocated NumPy arrays that share memory with torch tensors made
once at construction, so sampling allocates nothing and converts NumPy -> torch once per batch (only
the copy to an accelerator remains, when there is one).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A batch of transitions as tensors on the learner's device.

    ``weights`` are importance-sampling weights (all ones for uniform replay) and ``indices`` the
    buffer slots, for buffers that update priorities after the learning step.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    weights: torch.Tensor
    indices: np.ndarray


class ReplayBuffer:
    """Fixed-capacity ring of transitions, sampled uniformly.

    Only termination is stored: a truncated episode (time limit) still bootstraps from its next
    observation, because the state itself was not terminal.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        batch_size: int,
        device: torch.device,
        seed: int,
    ):
        self.capacity = capacity
        self.batch_size = batch_size
        self.device = device
        self.rng = np.random.default_rng(seed)
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.position = 0  # next slot to write
        self.size = 0

        self._batch_arrays = {
            name: np.zeros((batch_size, *array.shape[1:]), dtype=array.dtype) for name, array in self._fields().items()
        }
        self._batch_tensors = {name: torch.from_numpy(array) for name, array in self._batch_arrays.items()}
        self._ones = torch.ones(batch_size, dtype=torch.float32, device=device)

    def _fields(self) -> dict[str, np.ndarray]:
        return {
            "obs": self.obs,
            "actions": self.actions,
            "rewards": self.rewards,
            "next_obs": self.next_obs,
            "terminated": self.terminated,
        }

    def __len__(self) -> int:
        return self.size

    def add(self, obs, actions, rewards, next_obs, terminated) -> np.ndarray:
        """Store a batch of ``n`` transitions (one per sub-environment); returns the slots written."""
        n = len(actions)
        slots = (self.position + np.arange(n)) % self.capacity
        self.obs[slots] = obs
        self.actions[slots] = actions
        self.rewards[slots] = rewards
        self.next_obs[slots] = next_obs
        self.terminated[slots] = terminated
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return slots

    def sample_indices(self, step: int) -> tuple[np.ndarray, torch.Tensor]:
        """Slots to replay and their importance weights. Prioritized replay overrides this."""
        return self.rng.integers(0, self.size, size=self.batch_size), self._ones

    def sample(self, step: int) -> Batch:
        """A batch of ``batch_size`` transitions; the tensors are reused by the next call."""
        indices, weights = self.sample_indices(step)
        for name, array in self._fields().items():
            np.take(array, indices, axis=0, out=self._batch_arrays[name])
        t = {name: tensor.to(self.device, non_blocking=True) for name, tensor in self._batch_tensors.items()}
        return Batch(t["obs"], t["actions"], t["rewards"], t["next_obs"], t["terminated"], weights, indices)

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Uniform replay has no priorities; prioritized replay overrides this."""

    def metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        """The stored transitions (filled part only) as tensors, the ring position and the sampling RNG."""
        return {
            **{name: torch.from_numpy(array[: self.size].copy()) for name, array in self._fields().items()},
            "position": self.position,
            "size": self.size,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        self.size, self.position = state["size"], state["position"]
        for name, array in self._fields().items():
            array[: self.size] = state[name].numpy()
        self.rng.bit_generator.state = state["rng"]
