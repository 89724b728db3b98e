"""Tabular Q-learning (Watkins 1989) for envs whose observations are Discrete states.

One table of ``n_states x n_actions`` values, an epsilon-greedy behaviour policy from the ``schedule``
group, and the one-step update ``Q(s,a) += alpha * (r + gamma * max_a' Q(s',a') - Q(s,a))``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from rlrun.config import TabularQConfig
from rlrun.policies import TableLookupPolicy


class TabularQAgent:
    """Epsilon-greedy Q-learning on a table; the table is the whole model (and the checkpoint)."""

    learns = True

    def __init__(
        self,
        cfg: TabularQConfig,
        n_states: int,
        n_actions: int,
        epsilon: Callable[[int, int], float],
        seed: int | np.random.SeedSequence,
    ):
        self.cfg = cfg
        self.n_actions = n_actions
        self.epsilon = epsilon
        self.rng = np.random.default_rng(seed)
        self.q_table = np.full((n_states, n_actions), cfg.initial_q, dtype=np.float64)
        self.current_epsilon = epsilon(0, 0)
        # The transitions of the latest env step, applied by update(): observe() only records.
        self.pending: tuple[np.ndarray, ...] | None = None

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, step: int, episode: int) -> np.ndarray:
        self.current_epsilon = self.epsilon(step, episode)
        n = len(obs)
        q_values = self.q_table[obs]
        # Greedy with random tie-breaking: with an untouched table every action ties, and always taking
        # the first one would leave the others untried.
        ties = q_values == q_values.max(axis=1, keepdims=True)
        greedy = (self.rng.random(q_values.shape) * ties).argmax(axis=1)
        explore = self.rng.random(n) < self.current_epsilon
        return np.where(explore, self.rng.integers(0, self.n_actions, size=n), greedy)

    def act_greedy(self, obs: np.ndarray) -> np.ndarray:
        return self.q_table[np.asarray(obs, dtype=np.int64)].argmax(axis=1)

    def greedy_policy(self) -> TableLookupPolicy:
        """``act_greedy`` as a module holding a copy of the table, for ``mode=export``: actions and Q-values."""
        return TableLookupPolicy(self.q_table)

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        self.pending = (
            np.asarray(obs, dtype=np.int64),
            np.asarray(actions, dtype=np.int64),
            np.asarray(rewards, dtype=np.float64),
            np.asarray(next_obs, dtype=np.int64),
            np.asarray(terminated, dtype=bool),
        )

    # ------------------------------------------------------------------ learning
    def alpha(self, step: int) -> float:
        """Hyperbolic decay ``alpha / (1 + alpha_decay * step)``: a pure function of the step, like the schedules."""
        return self.cfg.alpha / (1.0 + self.cfg.alpha_decay * step)

    def update(self, step: int, episode: int) -> dict[str, float]:
        """Apply the one-step TD update to the transitions just observed, one sub-env after another.

        In sequence, as if the sub-envs' steps had come one at a time: sub-env ``i`` is env step
        ``step - num_envs + 1 + i`` (for alpha's decay) and sees the table its predecessors left. Summing
        TD errors computed from one old table instead would take k steps of alpha on a (state, action)
        that k sub-envs share, and diverge for k alpha > 2.
        """
        metrics = {"train/epsilon": self.current_epsilon}
        if self.pending is None:
            return metrics
        obs, actions, rewards, next_obs, terminated = self.pending
        self.pending = None
        q_table, gamma = self.q_table, self.cfg.gamma
        first_step = step - len(obs) + 1
        total_error = 0.0
        for i in range(len(obs)):
            # Only termination stops bootstrapping; a time-limit truncation still values the next state.
            target = rewards[i] if terminated[i] else rewards[i] + gamma * q_table[next_obs[i]].max()
            td_error = target - q_table[obs[i], actions[i]]
            q_table[obs[i], actions[i]] += self.alpha(first_step + i) * td_error
            total_error += abs(td_error)
        metrics["train/alpha"] = self.alpha(step)
        metrics["losses/td_error"] = float(total_error) / len(obs)
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self, include_replay: bool = False) -> dict[str, Any]:
        return {"q_table": torch.from_numpy(self.q_table.copy()), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_table[:] = state["q_table"].numpy()
        self.rng.bit_generator.state = state["rng"]

    def episodes_restarted(self) -> None:
        self.pending = None  # one step's transitions, applied at once: nothing spans the restart
