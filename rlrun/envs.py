"""Building Gymnasium environments from the ``env`` config group, with user errors made readable."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
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


def make_eval_env(cfg: DictConfig, max_episode_steps: int, render_mode: str | None = None) -> gym.Env:
    """One environment for greedy episodes, which must always end.

    A greedy policy can loop forever (CliffWalking has no time limit, and a policy that walks into a wall
    never reaches the goal), so an env without a time limit of its own is cut at ``max_episode_steps``
    (``eval.max_episode_steps``); such episodes end truncated. An env's own limit is left as it is.
    """
    env = make_env(cfg, render_mode=render_mode)
    if _time_limit(env) is None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)
    return env


def episode_step_limit(env: gym.Env) -> int | None:
    """The step at which the env's time limit cuts an episode, or None without one."""
    limit = _time_limit(env)
    return None if limit is None else limit._max_episode_steps


def make_vector_env(cfg: DictConfig) -> gym.vector.VectorEnv:
    """``cfg.num_envs`` copies in one process, reset in the same step as they finish.

    Same-step autoreset hands us the true final observation of each finished episode in
    ``info["final_obs"]``, so every stored transition is real (next-step autoreset would
    produce one bogus transition per episode). Episode returns come from RecordEpisodeStatistics.
    """
    make_env(cfg).close()  # fail with a clear message before spawning copies
    envs = SyncVectorEnv([lambda: make_env(cfg) for _ in range(cfg.num_envs)], autoreset_mode=AutoresetMode.SAME_STEP)
    return RecordEpisodeStatistics(envs)


def _time_limit(env: gym.Env):
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


# The toy-text grid worlds (FrozenLake, CliffWalking, Taxi) keep an episode in these attributes: the state
# number, the last action (rendering) and Taxi's fickle-passenger flag and orientation.
GRID_EPISODE_ATTRIBUTES = ("s", "lastaction", "fickle_step", "taxi_orientation")


def _plain(value):
    """Ints, bools and None as Python values, loadable with ``weights_only=True``."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    return int(value)


def capture_env_state(envs: gym.vector.VectorEnv) -> dict:
    """What it takes to continue every sub-env's current episode exactly, as plain values and tensors.

    Classic-control envs keep their whole physical state in ``unwrapped.state``, the toy-text grid worlds
    theirs in a few plain attributes; for those, that state, the time-limit counter and the env RNG make
    a resumed episode identical to an uninterrupted one. Envs without such a state (Box2D, Atari) record
    ``None``: a resume restores their RNG and starts fresh episodes.
    """
    import torch

    sub_states = []
    for env in envs.unwrapped.envs:
        core = env.unwrapped
        physical = getattr(core, "state", None)
        grid = None
        if physical is None and hasattr(core, "s"):
            grid = {name: _plain(getattr(core, name)) for name in GRID_EPISODE_ATTRIBUTES if hasattr(core, name)}
        limit = _time_limit(env)
        sub_states.append({
            "rng": core.np_random.bit_generator.state,
            "physical": None if physical is None else torch.as_tensor(np.asarray(physical, dtype=np.float64)),
            "grid": grid,
            "steps_beyond_terminated": getattr(core, "steps_beyond_terminated", None),
            "elapsed_steps": None if limit is None else limit._elapsed_steps,
        })
    return {
        "sub_envs": sub_states,
        "episode_returns": torch.as_tensor(envs.episode_returns),
        "episode_lengths": torch.as_tensor(envs.episode_lengths),
        "action_space_rng": envs.action_space.np_random.bit_generator.state,
    }


def restore_env_state(envs: gym.vector.VectorEnv, state: dict) -> bool:
    """Put captured state back into freshly reset envs; False when some episode could not be continued."""
    exact = True
    for env, sub in zip(envs.unwrapped.envs, state["sub_envs"]):
        core = env.unwrapped
        core.np_random.bit_generator.state = sub["rng"]
        if sub["physical"] is not None:
            physical = sub["physical"].numpy()
            core.state = physical.astype(np.asarray(core.state).dtype) if isinstance(core.state, np.ndarray) \
                else tuple(physical.tolist())
        elif sub.get("grid") is not None:
            for name, value in sub["grid"].items():
                setattr(core, name, value)
        else:
            exact = False
            continue
        if sub["steps_beyond_terminated"] is not None or hasattr(core, "steps_beyond_terminated"):
            core.steps_beyond_terminated = sub["steps_beyond_terminated"]
        limit = _time_limit(env)
        if limit is not None and sub["elapsed_steps"] is not None:
            limit._elapsed_steps = sub["elapsed_steps"]
    if exact:
        envs.episode_returns[:] = state["episode_returns"].numpy()
        envs.episode_lengths[:] = state["episode_lengths"].numpy()
    envs.action_space.np_random.bit_generator.state = state["action_space_rng"]
    return exact
