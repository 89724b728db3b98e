"""n-step returns: turn env steps into transitions ``(s_t, a_t, sum_j gamma^j r_{t+j}, s_{t+k}, done, gamma^k)``.

Each sub-environment keeps its own window of its last ``n`` steps (one shared ring of shape
``(n, num_envs, ...)``: the sub-envs step together, only their window lengths differ). A window emits
its oldest step once it holds ``n`` steps. When an episode ends, every pending step is emitted with
the ``k < n`` steps it has: after a termination they do not bootstrap, after a truncation they
bootstrap from the true final observation with ``gamma^k`` (Sutton & Barto 2018, ch. 7).
"""

from __future__ import annotations

import numpy as np
import torch


class NStepWindow:
    """The last ``n`` steps of every sub-env, and the n-step transitions they complete."""

    def __init__(self, n: int, gamma: float, num_envs: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype):
        self.n = n
        self.gamma = gamma
        self.num_envs = num_envs
        self.obs = np.zeros((n, num_envs, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((n, num_envs), dtype=np.int64)
        self.rewards = np.zeros((n, num_envs), dtype=np.float64)
        self.head = 0  # ring row the next step is written to
        self.lengths = np.zeros(num_envs, dtype=np.int64)  # pending steps per sub-env, 0..n-1 between calls
        self._powers = gamma ** np.arange(n, dtype=np.float64)  # gamma^j, j = 0..n-1
        self._envs = np.arange(num_envs)

    def push(self, obs, actions, rewards, next_obs, terminated, truncated) -> tuple[np.ndarray, ...] | None:
        """Take one step of every sub-env; return the transitions it completes (or None).

        Returned as arrays ``(obs, actions, returns, next_obs, terminated, discounts)``, oldest first
        per sub-env.
        """
        n, head = self.n, self.head
        self.obs[head], self.actions[head], self.rewards[head] = obs, actions, rewards
        self.lengths += 1
        self.head = (head + 1) % n
        done = np.logical_or(terminated, truncated)
        full = (self.lengths == n) & ~done
        parts = []
        if full.any():
            # Ring rows of the window, oldest first, end at head.
            rows = (head + 1 + np.arange(n)) % n
            envs = self._envs[full]
            oldest = rows[0]
            returns = self._powers @ self.rewards[rows][:, envs]
            count = len(envs)
            parts.append(
                (
                    self.obs[oldest, envs],
                    self.actions[oldest, envs],
                    returns,
                    next_obs[envs],
                    np.zeros(count, dtype=bool),
                    np.full(count, self.gamma**n),
                )
            )
            self.lengths[envs] -= 1
        for env in np.flatnonzero(done):  # once per episode: every pending step of this sub-env flushes
            length = self.lengths[env]
            rows = (head + 1 - length + np.arange(length)) % n
            returns = np.empty(length)
            running = 0.0
            for i in range(length - 1, -1, -1):  # discounted sums from each pending step to the end
                running = self.rewards[rows[i], env] + self.gamma * running
                returns[i] = running
            steps = length - np.arange(length)  # k for each pending step
            parts.append(
                (
                    self.obs[rows, env],
                    self.actions[rows, env],
                    returns,
                    np.repeat(next_obs[env][None], length, axis=0),
                    np.full(length, bool(terminated[env])),
                    self.gamma**steps,
                )
            )
            self.lengths[env] = 0
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(field) for field in zip(*parts))

    def drop_pending(self) -> None:
        """Forget every window in progress: their episodes will not continue (a resume with fresh episodes),
        and their n-step returns cannot be completed without the steps that would have followed."""
        self.lengths[:] = 0

    def state_dict(self) -> dict:
        return {
            "obs": torch.from_numpy(self.obs.copy()),
            "actions": torch.from_numpy(self.actions.copy()),
            "rewards": torch.from_numpy(self.rewards.copy()),
            "head": self.head,
            "lengths": torch.from_numpy(self.lengths.copy()),
        }

    def load_state_dict(self, state: dict) -> None:
        self.obs[...] = state["obs"].numpy()
        self.actions[...] = state["actions"].numpy()
        self.rewards[...] = state["rewards"].numpy()
        self.head = state["head"]
        self.lengths[...] = state["lengths"].numpy()
