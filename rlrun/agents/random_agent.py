"""Uniformly random actions: the floor every learning agent must beat."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlrun.agents.base import FixedPolicyAgent


class RandomAgent(FixedPolicyAgent):
    """Acts uniformly at random in training and evaluation alike; never learns."""

    def __init__(self, action_space: gym.Space, seed: int):
        self.action_space = action_space
        self.action_space.seed(seed)

    def act_greedy(self, obs: np.ndarray) -> np.ndarray:
        return np.stack([self.action_space.sample() for _ in range(len(obs))])
