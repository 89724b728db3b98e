"""Uniformly random actions: the floor every learning agent must beat."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np

from rlrun.agents.base import FixedPolicyAgent
from rlrun.runtime import space_seed


def as_int_seed(seed: int | np.random.SeedSequence) -> int:
    return seed if isinstance(seed, int) else space_seed(seed)


class RandomAgent(FixedPolicyAgent):
    """Acts uniformly at random in training and evaluation alike; never learns."""

    def __init__(
        self,
        action_space: gym.Space,
        seed: int | np.random.SeedSequence,
        eval_seed: int | np.random.SeedSequence | None = None,
    ):
        """``seed`` and ``eval_seed``: the run's exploration and evaluation streams (``rlrun.runtime.random_streams``);
        without ``eval_seed`` both are spawned from ``seed``."""
        if eval_seed is None:
            root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
            seed, eval_seed = root.spawn(2)
        # Two copies of the space with their own generators: greedy evaluation draws from the second one,
        # so evaluating never shifts the training actions. Both generators go into checkpoints.
        self.action_space = copy.deepcopy(action_space)
        self.action_space.seed(as_int_seed(seed))
        self.eval_action_space = copy.deepcopy(action_space)
        self.eval_action_space.seed(as_int_seed(eval_seed))

    def act(self, obs: np.ndarray, step: int, episode: int) -> np.ndarray:
        return np.stack([self.action_space.sample() for _ in range(len(obs))])

    def act_greedy(self, obs: np.ndarray) -> np.ndarray:
        return np.stack([self.eval_action_space.sample() for _ in range(len(obs))])

    def state_dict(self, include_replay: bool = False) -> dict[str, Any]:
        return {
            "rng": self.action_space.np_random.bit_generator.state,
            "eval_rng": self.eval_action_space.np_random.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "rng" in state:  # checkpoints written before the generators were saved hold none
            self.action_space.np_random.bit_generator.state = state["rng"]
            self.eval_action_space.np_random.bit_generator.state = state["eval_rng"]
