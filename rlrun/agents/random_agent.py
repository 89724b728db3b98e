"""Uniformly random actions: the floor every learning agent must beat."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class RandomAgent:
    """Acts uniformly at random in training and evaluation alike; never learns."""

    learns = False

    def __init__(self, action_space: gym.Space, seed: int):
        self.action_space = action_space
        self.action_space.seed(seed)

    def act(self, obs: np.ndarray, step: int, episode: int) -> np.ndarray:
        return self.act_greedy(obs)

    def act_greedy(self, obs: np.ndarray) -> np.ndarray:
        return np.stack([self.action_space.sample() for _ in range(len(obs))])

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        pass

    def update(self, step: int, episode: int) -> dict[str, float]:
        return {}

    def state_dict(self, include_replay: bool = False) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
