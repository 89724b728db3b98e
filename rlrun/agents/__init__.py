"""Agents, one class per family, built from the ``agent`` config group.

Agents return metrics as plain dicts and never import the logger, the CLI or Hydra.
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import torch
from omegaconf import DictConfig, OmegaConf

from rlrun.agents.actor_critic import ActorCriticAgent
from rlrun.agents.base import Agent
from rlrun.agents.dqn import DQNAgent
from rlrun.agents.heuristic import HEURISTICS, HeuristicAgent, heuristic_for
from rlrun.agents.random_agent import RandomAgent
from rlrun.agents.reinforce import ReinforceAgent
from rlrun.agents.tabular_q import TabularQAgent
from rlrun.buffers import build_buffer
from rlrun.config import ActorCriticConfig, DQNConfig, ReinforceConfig, TabularQConfig
from rlrun.errors import ConfigError
from rlrun.runtime import random_streams
from rlrun.schedules import LinearSchedule, build_schedule

__all__ = [
    "ActorCriticAgent",
    "Agent",
    "DQNAgent",
    "HeuristicAgent",
    "RandomAgent",
    "ReinforceAgent",
    "TabularQAgent",
    "agent_learns",
    "build_agent",
    "exportable_families",
    "learning_rate_schedule",
    "non_learning_families",
]

AGENT_CLASSES: dict[str, type] = {
    "dqn": DQNAgent,
    "reinforce": ReinforceAgent,
    "actor_critic": ActorCriticAgent,
    "tabular_q": TabularQAgent,
    "random": RandomAgent,
    "heuristic": HeuristicAgent,
}


def agent_learns(algo: str) -> bool:
    """Whether the family learns, i.e. needs a checkpoint before it is worth evaluating."""
    return getattr(AGENT_CLASSES.get(algo), "learns", True)


def non_learning_families() -> list[str]:
    return [algo for algo in AGENT_CLASSES if not agent_learns(algo)]


def exportable_families() -> list[str]:
    """The families whose greedy policy ``mode=export`` can write: those with a ``greedy_policy()`` module."""
    return [algo for algo, cls in AGENT_CLASSES.items() if hasattr(cls, "greedy_policy")]


def _agent_keys(cfg: DictConfig) -> dict[str, Any]:
    """The agent node as keyword arguments of its family's dataclass (rlrun/config.py)."""
    return cast(dict[str, Any], OmegaConf.to_container(cfg.agent, resolve=True))


def _require_discrete_actions(cfg: DictConfig, action_space: gym.Space) -> gym.spaces.Discrete:
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ConfigError(
            f"agent={cfg.agent.name} needs a discrete action space, but env.id={cfg.env.id} has {action_space}. "
            f"Pick an env with Discrete actions (cartpole, lunarlander, acrobot, mountaincar)."
        )
    return action_space


def learning_rate_schedule(params, total_steps: int) -> LinearSchedule | None:
    """``agent.lr_end``: the learning rate annealed linearly from ``lr`` over ``lr_decay_steps`` (null: the run's
    total_steps); None when the rate stays at ``lr``. Shared by every family with the keys."""
    if params.lr_end is None:
        return None
    return LinearSchedule(params.lr, params.lr_end, params.lr_decay_steps or total_steps)


def _require_box_observations(cfg: DictConfig, obs_space: gym.Space) -> gym.spaces.Box:
    if not isinstance(obs_space, gym.spaces.Box):
        raise ConfigError(
            f"agent={cfg.agent.name} needs a Box (array) observation space, but env.id={cfg.env.id} has "
            f"{obs_space}. Pick an env with array observations."
        )
    return obs_space


def _require_channels_first(cfg: DictConfig, obs_space: gym.spaces.Box) -> None:
    """Refuse images in Gymnasium's own (H, W, C) layout (CarRacing, a raw ``ALE/...`` id): DQN reads a 3-D
    observation as a (C, H, W) frame stack, and the CNN would end in a torch kernel-size error.

    Refused rather than transposed: a transpose alone would train on full-size colour screens, without the
    grayscale, resizing and frame stacking the Atari preset gives, at two such screens per stored transition.
    """
    shape = tuple(obs_space.shape)
    channels_last = len(shape) == 3 and shape[2] <= 4 < min(shape[0], shape[1])
    if not channels_last or cfg.env.get("preprocessing") == "atari":
        return
    instead = (
        f"For an Atari game use the Atari preset, which gives 84 x 84 grayscale frame stacks: env=atari "
        f"env.id={cfg.env.id} (or env=breakout, env=pong)."
        if str(cfg.env.id).startswith("ALE/")
        else "rlrun has no such conversion for other image envs: use an env with vector observations (e.g. "
        "env=lunarlander), or one registered to return (channels, height, width) images."
    )
    raise ConfigError(
        f"env.id={cfg.env.id} gives images of shape {shape}, Gymnasium's (height, width, channels) layout, but "
        f"agent={cfg.agent.name} takes 3-D observations as (channels, height, width) frame stacks, for its CNN "
        f"and its frame-by-frame replay buffer. {instead}"
    )


def _require_policy_actions(
    cfg: DictConfig, action_space: gym.Space, discrete_policy: str
) -> gym.spaces.Discrete | gym.spaces.Box:
    """The policy-gradient families sample from a distribution over Discrete actions or a Gaussian over Box ones."""
    if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise ConfigError(
            f"agent={cfg.agent.name} needs Discrete actions ({discrete_policy} policy) or Box actions (Gaussian "
            f"policy), but env.id={cfg.env.id} has {action_space}."
        )
    return action_space


def build_agent(cfg: DictConfig, obs_space: gym.Space, action_space: gym.Space, device: torch.device) -> Agent:
    """The agent for ``cfg.agent.algo``, checked against the env's spaces before anything trains."""
    algo = cfg.agent.algo
    if isinstance(action_space, gym.spaces.Discrete) and int(action_space.start) != 0 and agent_learns(algo):
        raise ConfigError(
            f"agent={cfg.agent.name} numbers actions 0..n-1, but env.id={cfg.env.id} has {action_space}, whose "
            f"actions start at {int(action_space.start)}: the agent would send actions outside the space. Pick an "
            f"env whose Discrete actions start at 0."
        )
    streams = random_streams(cfg.seed)  # each consumer its own stream (rlrun/runtime.py)
    # Plain dataclasses below: OmegaConf attribute access is far too slow for the per-step hot path.
    if algo == "random":
        return RandomAgent(action_space, streams["exploration"], streams["evaluation"])
    if algo == "heuristic":
        policy = heuristic_for(cfg.env.id)
        if policy is None:
            raise ConfigError(
                f"agent=heuristic has no hand-written policy for env.id={cfg.env.id}. Heuristics exist for "
                f"{', '.join(HEURISTICS)} (any version); pick one of those envs, or agent=random as a baseline."
            )
        return HeuristicAgent(policy, action_space)
    if algo == "dqn":
        action_space = _require_discrete_actions(cfg, action_space)
        obs_space = _require_box_observations(cfg, obs_space)
        _require_channels_first(cfg, obs_space)
        buffer = build_buffer(
            cfg.buffer,
            obs_space.shape,
            obs_space.dtype,
            cfg.agent.batch_size,
            device,
            streams["replay"],
            cfg.total_steps,
            cfg.agent.gamma,
            cfg.env.num_envs,
        )
        epsilon = build_schedule(cfg.schedule)
        params = DQNConfig(**_agent_keys(cfg))
        learning_rate = learning_rate_schedule(params, cfg.total_steps)
        return DQNAgent(
            params,
            obs_space.shape,
            int(action_space.n),
            buffer,
            epsilon,
            device,
            streams["exploration"],
            skip_nonfinite_loss=cfg.train.nan_policy == "skip",
            learning_rate=learning_rate,
            check_finite_every=cfg.log_every,
        )
    if algo == "reinforce":
        action_space = _require_policy_actions(cfg, action_space, "softmax")
        obs_space = _require_box_observations(cfg, obs_space)
        params = ReinforceConfig(**_agent_keys(cfg))
        return ReinforceAgent(params, obs_space.shape, action_space, device, streams["exploration"])
    if algo == "actor_critic":
        action_space = _require_policy_actions(cfg, action_space, "categorical")
        obs_space = _require_box_observations(cfg, obs_space)
        params = ActorCriticConfig(**_agent_keys(cfg))
        clip_range = None
        if params.clip_range is not None and params.clip_range_end is not None:  # validate() refuses one alone
            clip_range = LinearSchedule(
                params.clip_range, params.clip_range_end, params.lr_decay_steps or cfg.total_steps
            )
        if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) != 1:
            raise ConfigError(
                f"agent={cfg.agent.name} takes Box actions of one dimension (a vector), but env.id={cfg.env.id} has "
                f"actions of shape {action_space.shape}. Pick an env whose actions are a vector, of shape (n,)."
            )
        return ActorCriticAgent(
            params,
            obs_space.shape,
            action_space,
            device,
            streams["exploration"],
            learning_rate=learning_rate_schedule(params, cfg.total_steps),
            clip_range=clip_range,
            skip_nonfinite_loss=cfg.train.nan_policy == "skip",
        )
    if algo == "tabular_q":
        if not isinstance(obs_space, gym.spaces.Discrete):
            raise ConfigError(
                f"agent={cfg.agent.name} needs a Discrete observation space (one table row per state), but "
                f"env.id={cfg.env.id} has {obs_space}. Use an env with numbered states, e.g. env=gym "
                f"env.id=Taxi-v4, FrozenLake-v1 or CliffWalking-v1, or a function approximator (agent=dqn) "
                f"for array observations."
            )
        action_space = _require_discrete_actions(cfg, action_space)
        params = TabularQConfig(**_agent_keys(cfg))
        return TabularQAgent(
            params, int(obs_space.n), int(action_space.n), build_schedule(cfg.schedule), streams["exploration"]
        )
    raise ConfigError(f"agent.algo={algo!r} is not a known agent family; use one of: {', '.join(AGENT_CLASSES)}.")
