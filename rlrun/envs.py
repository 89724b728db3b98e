"""Building Gymnasium environments from the ``env`` config group, with user errors made readable."""

from __future__ import annotations

import gymnasium as gym
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from omegaconf import DictConfig, OmegaConf

from rlrun.errors import ConfigError


def make_env(cfg: DictConfig, render_mode: str | None = None) -> gym.Env:
    """One environment, e.g. for greedy evaluation."""
    kwargs = OmegaConf.to_container(cfg.kwargs, resolve=True) if cfg.kwargs else {}
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        return gym.make(cfg.id, **kwargs)
    except gym.error.Error as error:
        raise ConfigError(
            f"env.id={cfg.id!r} could not be made by gymnasium ({error}). Use a preset (env=cartpole, lunarlander, "
            f"acrobot, mountaincar) or env=gym env.id=<any registered id>, e.g. CartPole-v1."
        ) from None
    except TypeError as error:
        raise ConfigError(
            f"env.kwargs={kwargs} were not accepted by {cfg.id} ({error}). Pass only keyword arguments that "
            f"gymnasium.make('{cfg.id}', ...) accepts."
        ) from None


def make_vector_env(cfg: DictConfig) -> gym.vector.VectorEnv:
    """``cfg.num_envs`` copies in one process, reset in the same step as they finish.

    Same-step autoreset hands us the true final observation of each finished episode in
    ``info["final_obs"]``, so every stored transition is real (next-step autoreset would
    produce one bogus transition per episode). Episode returns come from RecordEpisodeStatistics.
    """
    make_env(cfg).close()  # fail with a clear message before spawning copies
    envs = SyncVectorEnv([lambda: make_env(cfg) for _ in range(cfg.num_envs)], autoreset_mode=AutoresetMode.SAME_STEP)
    return RecordEpisodeStatistics(envs)
