"""What the training loop expects of an agent.

The loop is the same for every agent (reset, act, step, observe, update, log, evaluate, checkpoint);
the agent decides when it learns and what it reports. Observations and actions are batched over
sub-environments: ``obs`` has shape ``(num_envs, *obs_shape)``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Agent(Protocol):
    learns: bool
    """False for fixed policies (random, heuristic): they can be evaluated without a checkpoint."""

    def act(self, obs: np.ndarray, step: int, episode: int) -> np.ndarray:
        """Actions to take while training (exploring), one per row of ``obs``."""

    def act_greedy(self, obs: np.ndarray) -> np.ndarray:
        """Best actions, for evaluation."""

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        """Take in the transitions just made (``next_obs`` is the true final obs when an episode ended)."""

    def update(self, step: int, episode: int) -> dict[str, float]:
        """Learn if due at this env step; return the metrics to log (namespaced TensorBoard keys)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue or evaluate: tensors, numbers, strings, dicts and lists only."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
