"""Building Gymnasium environments from the ``env`` config group, with user errors made readable."""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from omegaconf import DictConfig, OmegaConf

from rlrun.errors import ConfigError

ATARI_EXTRA_HINT = 'pip install "rlrun[atari]"'


def is_atari(cfg: DictConfig) -> bool:
    """An ALE game: the Atari presets, or any ``ALE/...`` id (e.g. through env=gym)."""
    return cfg.get("preprocessing") == "atari" or str(cfg.id).startswith("ALE/")


def require_atari_extra(env_id: str) -> None:
    """Import what ALE games need and register their ids with Gymnasium, or say which extra to install.

    ale-py ships the game ROMs, so nothing is downloaded at run time; OpenCV does AtariPreprocessing's resize.
    """
    missing = []
    try:
        import ale_py
    except ImportError:
        missing.append("ale-py")
    try:
        import cv2  # noqa: F401
    except ImportError:
        missing.append("opencv-python-headless")
    if missing:
        raise ConfigError(
            f"env.id={env_id} is an Atari game, which needs the atari extra, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install it with {ATARI_EXTRA_HINT} (or pip "
            f'install -e ".[atari]" in a checkout): it brings gymnasium[atari] (ale-py, with the game ROMs) and '
            f"opencv-python-headless. Other envs (cartpole, lunarlander, ...) do not need it."
        )
    gym.register_envs(ale_py)


def make_env(cfg: DictConfig, render_mode: str | None = None, training: bool = False, epsilon: float = 0.0) -> gym.Env:
    """One environment, e.g. for greedy evaluation.

    ``training`` applies what only the learner should see: Atari reward clipping (``env.clip_rewards``),
    so evaluation and videos report the game's own score. ``epsilon`` (``eval.epsilon``) makes an
    evaluation env take a random action instead of the agent's with that probability.
    """
    kwargs = cast(dict[str, Any], OmegaConf.to_container(cfg.kwargs, resolve=True)) if cfg.kwargs else {}
    # The Atari preset applies env.max_episode_steps in agent steps (atari_wrappers): gymnasium.make's TimeLimit
    # would sit on the unskipping emulator and count frames.
    if cfg.max_episode_steps is not None and cfg.get("preprocessing") != "atari":
        kwargs["max_episode_steps"] = cfg.max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if is_atari(cfg):
        require_atari_extra(cfg.id)
    if cfg.get("preprocessing") == "atari":
        # frame skipping is AtariPreprocessing's (with max-pooling), so the emulator itself must not skip
        kwargs.update(frameskip=1, repeat_action_probability=cfg.repeat_action_probability)
    try:
        env = gym.make(cfg.id, **kwargs)
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
    if cfg.get("preprocessing") == "atari":
        env = atari_wrappers(env, cfg, training)
    if epsilon > 0:
        env = RandomActionsWithProbability(env, epsilon)
    return env


class RandomActionsWithProbability(gym.Wrapper):
    """Evaluation with ``eval.epsilon``: each step, with probability epsilon, a uniformly random action
    replaces the agent's (Atari's usual 0.05 keeps a deterministic policy from looping forever).

    The random draws come from a generator seeded by the episode's reset seed, so an episode replays
    exactly (videos) and every policy compared on the same seeds meets the same random steps.
    """

    def __init__(self, env: gym.Env, epsilon: float):
        super().__init__(env)
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ConfigError(
                f"eval.epsilon={epsilon} needs a discrete action space, but {env.spec.id if env.spec else env} has "
                f"{env.action_space}. Use eval.epsilon=0 (greedy evaluation) for this env."
            )
        self.epsilon = epsilon
        self.n_actions = int(env.action_space.n)
        self.rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng([seed, 0xE95])  # its own stream, apart from the env's seed
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        if self.rng.random() < self.epsilon:
            action = self.rng.integers(self.n_actions)
        return self.env.step(action)


def atari_wrappers(env: gym.Env, cfg: DictConfig, training: bool) -> gym.Env:
    """Gymnasium's own AtariPreprocessing (no-op starts, frame skip, grayscale, resize) and frame stacking.

    FrameStackObservation pads the first observations of a game with copies of the reset frame
    (``padding_type="reset"``), so a stack never holds frames of a previous game. A game ends at game over or
    at the emulator's cap of 108,000 frames (ALE v5's ``max_num_frames_per_episode``), in training and
    evaluation alike; ``env.max_episode_steps`` cuts it earlier, counted in agent steps.
    """
    from gymnasium.wrappers import AtariPreprocessing, ClipReward, FrameStackObservation

    # terminal_on_life_loss=False here: AtariPreprocessing's own would reset the whole game after every lost life
    env = AtariPreprocessing(
        env,
        noop_max=cfg.noop_max,
        frame_skip=cfg.frame_skip,
        screen_size=cfg.screen_size,
        terminal_on_life_loss=False,
        grayscale_obs=True,
    )
    env = FrameStackObservation(env, cfg.frame_stack, padding_type="reset")
    if cfg.max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=cfg.max_episode_steps)
    if training and cfg.terminal_on_life_loss:
        env = LifeLossTerminal(env)
    if training and cfg.clip_rewards:
        env = ClipReward(env, -1.0, 1.0)
    return env


class LifeLossTerminal(gym.Wrapper):
    """``env.terminal_on_life_loss``: a lost life ends the agent's episode, not the game (the DQN paper's
    convention, Stable-Baselines3's ``EpisodicLifeEnv``).

    The step that loses a life returns ``terminated=True``, so the TD target (and an n-step return) does not
    bootstrap across it, and ``info["life_lost"]``, so the vector env keeps counting the game's return and
    length. The ``reset()`` right after such a step continues the game: it returns that step's observation
    again, the frame stack going on as the screen does, with no hidden step and no no-op start. Any other
    reset (after game over or a truncation, with a seed, or mid-life) resets the game itself.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.continues = False  # the last step lost a life and the game goes on
        self.last_obs = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self.continues and seed is None and options is None:
            self.continues = False
            return self.last_obs, {"lives": self.lives}
        self.continues = False
        obs, info = self.env.reset(seed=seed, options=options)
        self.lives = self.env.unwrapped.ale.lives()  # type: ignore[attr-defined]  # ale_py's AtariEnv
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()  # type: ignore[attr-defined]
        life_lost = lives < self.lives and not (terminated or truncated)
        self.lives = lives
        self.continues = life_lost
        if life_lost:
            self.last_obs = obs
            info = {**info, "life_lost": True}
        return obs, reward, terminated or life_lost, truncated, info


def make_eval_env(
    cfg: DictConfig, max_episode_steps: int, render_mode: str | None = None, epsilon: float = 0.0
) -> gym.Env:
    """One environment for greedy episodes, which must always end.

    A greedy policy can loop forever (CliffWalking has no time limit, and a policy that walks into a wall
    never reaches the goal), so an env without a time limit of its own is cut at ``max_episode_steps``
    (``eval.max_episode_steps``); such episodes end truncated. An env's own limit is left as it is.
    ``epsilon`` is ``eval.epsilon`` (see :func:`make_env`).
    """
    env = make_env(cfg, render_mode=render_mode, epsilon=epsilon)
    if _time_limit(env) is None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)
    return env


def episode_step_limit(env: gym.Env) -> int | None:
    """The step at which the env's time limit cuts an episode, or None without one."""
    limit = _time_limit(env)
    return None if limit is None else limit._max_episode_steps


def make_vector_env(cfg: DictConfig) -> SameStepVectorEnv:
    """``cfg.num_envs`` copies in one process, reset in the same step as they finish.

    Same-step autoreset hands us the true final observation of each finished episode in
    ``info["final_obs"]``, so every stored transition is real (next-step autoreset would
    produce one bogus transition per episode). Episode returns and lengths come in ``info["episode"]``.
    """
    make_env(cfg).close()  # fail with a clear message before spawning copies
    return SameStepVectorEnv([lambda: make_env(cfg, training=True) for _ in range(cfg.num_envs)])


class SameStepVectorEnv(gym.vector.VectorEnv):
    """Gymnasium's ``SyncVectorEnv(autoreset_mode=SAME_STEP)`` wrapped in ``RecordEpisodeStatistics``, minus
    what the training loop never reads, in one lean class.

    Same observations, rewards, flags, seeding (``reset(seed=s)`` seeds sub-env ``i`` with ``s + i``) and
    autoreset, and the same info keys the loop reads: ``final_obs``/``_final_obs`` and ``episode`` (``r``,
    ``l``)/``_episode``. It skips the merging of the sub-envs' own infos and the per-step wrapper layers,
    which cost more than a CartPole step (tests/test_envs.py checks it against Gymnasium's pair).

    One difference: a termination with ``info["life_lost"]`` (:class:`LifeLossTerminal`) ends the agent's
    episode (``final_obs``, then the reset that continues the game) but not the statistics: ``episode``
    reports whole games.
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
        self.obs_shape: tuple[int, ...] = self.single_observation_space.shape or ()
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
            observations[i], rewards[i], terminated[i], truncated[i], info = env.step(actions[i])
            self.episode_returns[i] += rewards[i]
            self.episode_lengths[i] += 1
            if terminated[i] or truncated[i]:
                if not infos:
                    infos = {"final_obs": np.zeros_like(observations), "_final_obs": np.zeros(n, dtype=bool)}
                infos["final_obs"][i] = observations[i]
                infos["_final_obs"][i] = True
                if not info.get("life_lost", False):
                    if "episode" not in infos:
                        infos["episode"] = {"r": np.zeros(n), "l": np.zeros(n, dtype=np.int64)}
                        infos["_episode"] = np.zeros(n, dtype=bool)
                    infos["episode"]["r"][i] = self.episode_returns[i]
                    infos["episode"]["l"][i] = self.episode_lengths[i]
                    infos["_episode"][i] = True
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


# The toy-text grid worlds (FrozenLake, CliffWalking, Taxi) keep an episode in these attributes: the state
# number, the last action (rendering) and Taxi's fickle-passenger flag and orientation.
GRID_EPISODE_ATTRIBUTES = ("s", "lastaction", "fickle_step", "taxi_orientation")


def _exactly_restorable() -> dict[type, str]:
    """Env classes whose episode in progress is their ``state`` ("physical") or grid attributes ("grid").

    An allow-list by exact class, because the attribute names prove nothing: CarRacing's ``state`` is its last
    pixel frame (the car lives in a Box2D world), and a subclass may keep more. Each class listed here reads
    nothing else in ``step()`` but its np_random (restored too), the time-limit counter and, for CartPole,
    ``steps_beyond_terminated``. Every other env resumes with fresh episodes.
    """
    from gymnasium.envs.classic_control import (
        AcrobotEnv,
        CartPoleEnv,
        Continuous_MountainCarEnv,
        MountainCarEnv,
        PendulumEnv,
    )
    from gymnasium.envs.toy_text import CliffWalkingEnv, FrozenLakeEnv, TaxiEnv

    return {
        **dict.fromkeys((CartPoleEnv, AcrobotEnv, MountainCarEnv, Continuous_MountainCarEnv, PendulumEnv), "physical"),
        **dict.fromkeys((FrozenLakeEnv, CliffWalkingEnv, TaxiEnv), "grid"),
    }


def _plain(value):
    """Ints, bools and None as Python values, loadable with ``weights_only=True``."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    return int(value)


def capture_env_state(envs: SameStepVectorEnv) -> dict:
    """What it takes to continue every sub-env's current episode exactly, as plain values and tensors.

    Classic-control envs keep their whole physical state in ``unwrapped.state``, the toy-text grid worlds
    theirs in a few plain attributes; for those (:func:`_exactly_restorable`), that state, the time-limit counter
    and the env RNG make a resumed episode identical to an uninterrupted one. Every other env (Box2D, Atari,
    MuJoCo) records ``None``: a resume restores its RNG and starts fresh episodes.
    """
    import torch

    restorable = _exactly_restorable()
    sub_states = []
    for env in envs.envs:
        core = env.unwrapped
        kind = restorable.get(type(core))
        physical = getattr(core, "state", None) if kind == "physical" else None
        grid = None
        if kind == "grid":
            grid = {name: _plain(getattr(core, name)) for name in GRID_EPISODE_ATTRIBUTES if hasattr(core, name)}
        limit = _time_limit(env)
        sub_states.append(
            {
                "rng": core.np_random.bit_generator.state,
                # in its own dtype: Acrobot's state is float32 after a reset and float64 after a step, and the dtype
                # changes the next step's rounding (a tuple, as MountainCar's, becomes float64: the same numbers)
                "physical": None if physical is None else torch.as_tensor(np.array(physical)),
                "grid": grid,
                "steps_beyond_terminated": getattr(core, "steps_beyond_terminated", None),
                "elapsed_steps": None if limit is None else limit._elapsed_steps,
            }
        )
    return {
        "sub_envs": sub_states,
        "episode_returns": torch.as_tensor(envs.episode_returns),
        "episode_lengths": torch.as_tensor(envs.episode_lengths),
        "action_space_rng": envs.action_space.np_random.bit_generator.state,
    }


def restore_env_state(envs: SameStepVectorEnv, state: dict) -> bool:
    """Put captured state back into freshly reset envs; False when some episode could not be continued."""
    exact = True
    restorable = _exactly_restorable()
    for env, sub in zip(envs.envs, state["sub_envs"]):
        core = env.unwrapped
        core.np_random.bit_generator.state = sub["rng"]
        if type(core) not in restorable:  # e.g. a checkpoint from before the allow-list saved CarRacing's frame
            exact = False
            continue
        if sub["physical"] is not None:
            core.state = sub["physical"].numpy().copy()
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
