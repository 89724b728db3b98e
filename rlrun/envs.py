"""Building Gymnasium environments from the ``env`` config group, with user errors made readable."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
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


def make_vector_env(cfg: DictConfig) -> "SameStepVectorEnv":
    """``cfg.num_envs`` copies in one process, reset in the same step as they finish.

    Same-step autoreset hands us the true final observation of each finished episode in
    ``info["final_obs"]``, so every stored transition is real (next-step autoreset would
    produce one bogus transition per episode). Episode returns and lengths come in ``info["episode"]``.
    """
    make_env(cfg).close()  # fail with a clear message before spawning copies
    return SameStepVectorEnv([lambda: make_env(cfg) for _ in range(cfg.num_envs)])


class SameStepVectorEnv(gym.vector.VectorEnv):
    """Gymnasium's ``SyncVectorEnv(autoreset_mode=SAME_STEP)`` wrapped in ``RecordEpisodeStatistics``, minus
    what the training loop never reads, in one lean class.

    Same observations, rewards, flags, seeding (``reset(seed=s)`` seeds sub-env ``i`` with ``s + i``) and
    autoreset, and the same info keys the loop reads: ``final_obs``/``_final_obs`` and ``episode`` (``r``,
    ``l``)/``_episode``. It skips the merging of the sub-envs' own infos and the per-step wrapper layers,
    which cost more than a CartPole step (tests/test_envs.py checks it against Gymnasium's pair).
    """

    def __init__(self, env_fns):
        self.envs = [make() for make in env_fns]
        self.num_envs = len(self.envs)
        first = self.envs[0]
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {**first.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = first.render_mode
        self.spec = first.spec
        self.obs_shape = self.single_observation_space.shape
        self.obs_dtype = self.single_observation_space.dtype
        # running statistics of the episodes in progress (float64 returns, like RecordEpisodeStatistics)
        self.episode_returns = np.zeros(self.num_envs)
        self.episode_lengths = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        observations = np.empty((self.num_envs, *self.obs_shape), dtype=self.obs_dtype)
        for i, (env, env_seed) in enumerate(zip(self.envs, seeds)):
            observations[i], _ = env.reset(seed=env_seed, options=options)
        self.episode_returns[:] = 0.0
        self.episode_lengths[:] = 0
        return observations, {}

    def step(self, actions):
        n = self.num_envs
        observations = np.empty((n, *self.obs_shape), dtype=self.obs_dtype)
        rewards = np.empty(n)
        terminated = np.empty(n, dtype=bool)
        truncated = np.empty(n, dtype=bool)
        infos: dict = {}
        for i, env in enumerate(self.envs):
            observations[i], rewards[i], terminated[i], truncated[i], _ = env.step(actions[i])
            self.episode_returns[i] += rewards[i]
            self.episode_lengths[i] += 1
            if terminated[i] or truncated[i]:
                if not infos:
                    infos = {"final_obs": np.zeros_like(observations), "_final_obs": np.zeros(n, dtype=bool),
                             "episode": {"r": np.zeros(n), "l": np.zeros(n, dtype=np.int64)},
                             "_episode": np.zeros(n, dtype=bool)}
                infos["final_obs"][i] = observations[i]
                infos["episode"]["r"][i] = self.episode_returns[i]
                infos["episode"]["l"][i] = self.episode_lengths[i]
                infos["_final_obs"][i] = infos["_episode"][i] = True
                self.episode_returns[i] = 0.0
                self.episode_lengths[i] = 0
                observations[i], _ = env.reset()
        return observations, rewards, terminated, truncated, infos

    def close_extras(self, **kwargs) -> None:
        for env in self.envs:
            env.close()


def _time_limit(env: gym.Env):
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def capture_env_state(envs: gym.vector.VectorEnv) -> dict:
    """What it takes to continue every sub-env's current episode exactly, as plain values and tensors.

    Classic-control envs keep their whole physical state in ``unwrapped.state``; for those, the state,
    the time-limit counter and the env RNG make a resumed episode identical to an uninterrupted one.
    Envs without such a state (Box2D, Atari) record ``None``: a resume restores their RNG and starts
    fresh episodes.
    """
    import torch

    sub_states = []
    for env in envs.unwrapped.envs:
        core = env.unwrapped
        physical = getattr(core, "state", None)
        limit = _time_limit(env)
        sub_states.append({
            "rng": core.np_random.bit_generator.state,
            "physical": None if physical is None else torch.as_tensor(np.asarray(physical, dtype=np.float64)),
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
        if sub["physical"] is None:
            exact = False
            continue
        physical = sub["physical"].numpy()
        core.state = physical.astype(np.asarray(core.state).dtype) if isinstance(core.state, np.ndarray) \
            else tuple(physical.tolist())
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
