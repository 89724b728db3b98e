"""Agents, one class per family, built from the ``agent`` config group.

Agents return metrics as plain dicts and never import the logger, the CLI or Hydra.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from omegaconf import DictConfig, OmegaConf

from rlrun.agents.base import Agent
from rlrun.agents.dqn import DQNAgent
from rlrun.agents.random_agent import RandomAgent
from rlrun.buffers import build_buffer
from rlrun.config import DQNConfig
from rlrun.errors import ConfigError
from rlrun.schedules import build_schedule

__all__ = ["Agent", "DQNAgent", "RandomAgent", "agent_learns", "build_agent", "non_learning_families"]

AGENT_CLASSES: dict[str, type] = {"dqn": DQNAgent, "random": RandomAgent}


def agent_learns(algo: str) -> bool:
    """Whether the family learns, i.e. needs a checkpoint before it is worth evaluating."""
    return getattr(AGENT_CLASSES.get(algo), "learns", True)


def non_learning_families() -> list[str]:
    return [algo for algo in AGENT_CLASSES if not agent_learns(algo)]


def build_agent(cfg: DictConfig, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> Agent:
    """The agent for ``cfg.agent.algo``, checked against the env's spaces before anything trains."""
    algo = cfg.agent.algo
    if algo == "random":
        return RandomAgent(action_space, cfg.seed)
    if algo == "dqn":
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ConfigError(
                f"agent={cfg.agent.name} needs a discrete action space, but env.id={cfg.env.id} has {action_space}. "
                f"Pick an env with Discrete actions (cartpole, lunarlander, acrobot, mountaincar)."
            )
        if not isinstance(obs_space, gym.spaces.Box):
            raise ConfigError(
                f"agent={cfg.agent.name} needs a Box (array) observation space, but env.id={cfg.env.id} has "
                f"{obs_space}. Pick an env with array observations."
            )
        buffer = build_buffer(
            cfg.buffer, obs_space.shape, obs_space.dtype, cfg.agent.batch_size, device, cfg.seed, cfg.total_steps
        )
        epsilon = build_schedule(cfg.schedule)
        # A plain dataclass: OmegaConf attribute access is far too slow for the per-step hot path.
        params = DQNConfig(**OmegaConf.to_container(cfg.agent, resolve=True))
        return DQNAgent(params, obs_space.shape, int(action_space.n), buffer, epsilon, device, cfg.seed)
    raise ConfigError(f"agent.algo={algo!r} is not a known agent family; use one of: dqn, random.")

