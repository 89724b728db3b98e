"""Uniformly random actions: the floor every learning agent must beat."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np

from rlrun.agents.base import FixedPolicyAgent


class RandomAgent(FixedPolicyAgent):
    """Acts uniformly at random in training and evaluation alike; never learns."""

    def __init__(self, action_space: gym.Space, seed: int):
        # Two copies of the space with their own generators: greedy evaluation draws from the second one,
        # so evaluating never shifts the training actions. Both generators go into checkpoints.
        self.action_space = copy.deepcopy(action_space)
        self.action_space.seed(seed)
        self.eval_action_space = copy.deepcopy(action_space)
        self.eval_action_space.seed(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))

    def act(self, obs: np.ndarray, step: int, episode: int) -> np.ndarray:
        return np.stack([self.action_space.sample() for _ in range(len(obs))])

    def act_greedy(self, obs: np.ndarray) -> np.ndarray:
        return np.stack([self.eval_action_space.sample() for _ in range(len(obs))])

    def state_dict(self, include_replay: bool = False) -> dict[str, Any]:
        return {"rng": self.action_space.np_random.bit_generator.state,
                "eval_rng": self.eval_action_space.np_random.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "rng" in state:  # checkpoints written before the generators were saved hold none
            self.action_space.np_random.bit_generator.state = state["rng"]
            self.eval_action_space.np_random.bit_generator.state = state["eval_rng"]
