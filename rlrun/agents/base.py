"""What the training loop expects of an agent.

The loop is the same for every agent (reset, act, step, observe, update, log, evaluate, checkpoint);
the agent decides when it learns and what it reports. Observations and actions are batched over
sub-environments: ``obs`` has shape ``(num_envs, *obs_shape)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch


class Agent(Protocol):
    learns: bool
    """False for fixed policies (random, heuristic): they can be evaluated without a checkpoint."""

    def act(self, obs: np.ndarray, step: int, episode: int) -> np.ndarray:
        """Actions to take while training (exploring), one per row of ``obs``."""

    def act_greedy(self, obs: np.ndarray) -> np.ndarray:
        """Best actions, for evaluation."""

    # Optional, for mode=export (rlrun/export.py): families with a greedy policy that is a torch computation have
    #   def greedy_policy(self) -> torch.nn.Module
    # returning a CPU module, independent of the agent, that maps a batch of observations to (actions, scores...)
    # exactly as act_greedy does; see rlrun/policies.py. Fixed policies (random, heuristic) have none.

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        """Take in the transitions just made (``next_obs`` is the true final obs when an episode ended)."""

    def update(self, step: int, episode: int) -> Mapping[str, float | torch.Tensor]:
        """Learn if due at this env step; return the metrics to log (namespaced TensorBoard keys).

        A metric may stay a 0-d tensor: the logger reads it only when it writes, so a GPU is not synced every step.
        """

    def state_dict(self, include_replay: bool = False) -> dict[str, Any]:
        """Everything needed to evaluate, and with ``include_replay`` to resume training exactly.

        Tensors, numbers, strings, dicts and lists only: checkpoints load with ``weights_only=True``.
        """

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def episodes_restarted(self) -> None:
        """The envs could not continue their episodes after a resume and start fresh ones: forget what is held
        of the interrupted episodes, so none is stitched to a new one."""


class FixedPolicyAgent:
    """Base of the agents that never learn (random, heuristic): they act the same in training and evaluation.

    Subclasses supply ``act_greedy``; there is nothing to observe, update or save.
    """

    learns = False

    def act(self, obs: np.ndarray, step: int, episode: int) -> np.ndarray:
        return self.act_greedy(obs)

    def act_greedy(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        pass

    def update(self, step: int, episode: int) -> dict[str, float]:
        return {}

    def state_dict(self, include_replay: bool = False) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def episodes_restarted(self) -> None:
        pass
