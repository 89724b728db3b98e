"""Hand-written policies per environment: reference curves and evaluation baselines that never learn.

A trained agent should beat its env's heuristic; running the heuristic through the same loop and the
same evaluation makes that comparison one command (``rlrun mode=evaluate agent=heuristic env=...``).
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np
from gymnasium.envs.box2d.lunar_lander import heuristic as lunar_lander_heuristic
from gymnasium.envs.registration import parse_env_id

from rlrun.agents.base import FixedPolicyAgent

# A policy maps a batch of observations (num_envs, *obs_shape) and the action space to a batch of actions.
Policy = Callable[[np.ndarray, gym.Space], np.ndarray]


def cartpole_pole_angle(obs: np.ndarray, action_space: gym.Space) -> np.ndarray:
    """Push the cart towards the side the pole leans to (left if the angle is negative, else right).

    The simple rule from the Hands-On ML chapter: it balances for a few dozen steps, then the wobbles grow.
    """
    return (obs[:, 2] >= 0).astype(np.int64)


class _LanderFlags:
    """What Gymnasium's lander heuristic reads from its ``env`` argument: ``env.unwrapped.continuous``."""

    def __init__(self, continuous: bool):
        self.continuous = continuous
        self.unwrapped = self


def lunar_lander(obs: np.ndarray, action_space: gym.Space) -> np.ndarray:
    """Gymnasium's own PID-like lander controller, for the discrete and the continuous lander alike."""
    continuous = isinstance(action_space, gym.spaces.Box)
    flags = _LanderFlags(continuous)
    actions = [lunar_lander_heuristic(flags, row) for row in obs]
    return np.asarray(actions, dtype=np.float32 if continuous else np.int64)


def mountain_car_momentum(obs: np.ndarray, action_space: gym.Space) -> np.ndarray:
    """Push the way the car already moves: each swing gains energy until it clears the hill."""
    forward = obs[:, 1] >= 0
    if isinstance(action_space, gym.spaces.Box):
        return np.where(forward, 1.0, -1.0).astype(np.float32).reshape(len(obs), 1)
    return np.where(forward, 2, 0).astype(np.int64)


# Keyed by the env's name without version, so LunarLander-v2/v3 and LunarLanderContinuous-v3 all match.
HEURISTICS: dict[str, Policy] = {
    "CartPole": cartpole_pole_angle,
    "LunarLander": lunar_lander,
    "LunarLanderContinuous": lunar_lander,
    "MountainCar": mountain_car_momentum,
    "MountainCarContinuous": mountain_car_momentum,
}


def heuristic_for(env_id: str) -> Policy | None:
    """The hand-written policy for ``env_id`` (e.g. ``CartPole-v1``), or None when there is none."""
    _, name, _ = parse_env_id(env_id)
    return HEURISTICS.get(name)


class HeuristicAgent(FixedPolicyAgent):
    """Acts with a fixed hand-written policy in training and evaluation alike; never learns."""

    def __init__(self, policy: Policy, action_space: gym.Space):
        self.policy = policy
        self.action_space = action_space

    def act_greedy(self, obs: np.ndarray) -> np.ndarray:
        return self.policy(np.asarray(obs), self.action_space)
