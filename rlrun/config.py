"""Typed configuration: the schema behind every YAML file in conf/, and the checks Hydra cannot express.

Each group option in conf/ starts from one of these dataclasses (``- /schema/<group>/<name>@_here_``),
so a misspelt key, a wrong type or an unknown option fails while Hydra composes the config. Range
and cross-field checks live in :func:`validate`, which runs before any environment or network is built.
"""

from __future__ import annotations

import importlib.resources
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from rlrun.errors import ConfigError


# ----------------------------------------------------------------------------- env
@dataclass
class EnvConfig:
    name: str = "cartpole"  # preset name, used in hparams and run summaries
    id: str = MISSING  # any id registered with gymnasium
    num_envs: int = 1  # sub-environments stepped together in one process (rlrun.envs.SameStepVectorEnv)
    max_episode_steps: Optional[int] = None  # None keeps the env's own time limit
    kwargs: Dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make


@dataclass
class AtariEnvConfig(EnvConfig):
    """An ALE game from pixels: Gymnasium's AtariPreprocessing, then FrameStackObservation.

    The ALE env itself runs with ``frameskip=1``: frame skipping (with max-pooling of the last two
    frames) is AtariPreprocessing's, so it is done once and not twice.
    """

    name: str = "atari"
    preprocessing: str = "atari"  # marks the env for the Atari wrappers in rlrun.envs.make_env
    repeat_action_probability: float = 0.25  # sticky actions (Machado et al. 2018); 0 is the old deterministic ALE
    noop_max: int = 30  # at reset, up to this many no-op steps (a random start)
    frame_skip: int = 4  # emulator frames per agent step, the last two max-pooled
    screen_size: int = 84  # observations are screen_size x screen_size grayscale
    terminal_on_life_loss: bool = False  # losing a life ends the training episode (evaluation plays whole games)
    frame_stack: int = 4  # the observation is the last frame_stack frames, shape (frame_stack, size, size)
    clip_rewards: bool = True  # training rewards are sign(r); evaluation always reports the game score


# ----------------------------------------------------------------------------- agents
@dataclass
class DQNConfig:
    name: str = "dqn"  # preset name (dqn, double_dqn, ...); the switches below define the variant
    algo: str = "dqn"  # agent family: picks the class in rlrun.agents
    double: bool = False  # Double DQN: online net picks the next action, target net values it
    dueling: bool = False  # Dueling head: Q = V + A - mean(A)
    target_update: str = "hard"  # hard (copy) | soft (Polyak with tau)
    # env steps between target updates; null: 500 for hard, train_freq (after every update) for soft
    target_update_every: Optional[int] = None
    tau: float = 0.005  # soft update rate; ignored by hard updates
    loss: str = "huber"  # huber | mse
    max_grad_norm: Optional[float] = 10.0  # gradient clipping; null disables it
    gamma: float = 0.99
    lr: float = 1e-3
    # null keeps lr constant; a number anneals the learning rate linearly from lr to lr_end over lr_decay_steps
    lr_end: Optional[float] = None
    lr_decay_steps: Optional[int] = None  # env steps of that anneal; null: the run's total_steps (kept on resume)
    batch_size: int = 64
    learning_starts: int = 1000  # env steps of pure collection before the first update
    train_freq: int = 4  # env steps between updates
    gradient_steps: int = 1  # gradient steps per update
    hidden_sizes: List[int] = field(default_factory=lambda: [128, 128])  # the MLP's layers (network=mlp)
    network: str = "auto"  # auto (images -> cnn, vectors -> mlp) | mlp | cnn (Nature-DQN, for (C, H, W) images)


# DQNConfig keys the members of one population (hydra/launcher=population) may differ in: the update's scalars that
# change no shape. Each member's discount lives in its own replay buffer (gamma^n per transition), its Polyak rate
# in DQNPopulation's per-member taus, its learning rate (and anneal) in a per-member scaling of the one Adam step;
# everything else is shared by one optimizer and one batch shape.
MEMBER_AGENT_KEYS = ("gamma", "tau", "lr", "lr_end")


@dataclass
class RandomAgentConfig:
    name: str = "random"
    algo: str = "random"


@dataclass
class ReinforceConfig:
    name: str = "reinforce"
    algo: str = "reinforce"
    gamma: float = 0.99
    lr: float = 1e-3  # Adam, for the policy and (baseline=value) the value net
    episodes_per_update: int = 4  # finished episodes (over all sub-envs) per gradient step
    normalize_returns: bool = True  # standardise the policy-gradient weights across the update's steps
    baseline: str = "none"  # none | mean (the update's mean return) | value (a learned state-value net)
    entropy_coef: float = 0.0  # weight of the entropy bonus in the loss
    temperature: float = 1.0  # softmax temperature of the Discrete-action policy; ignored for Box actions
    init_log_std: float = 0.0  # initial log standard deviation of the Gaussian policy (Box actions)
    max_grad_norm: Optional[float] = None  # gradient clipping per network; null disables it
    hidden_sizes: List[int] = field(default_factory=lambda: [64, 64])


@dataclass
class ActorCriticConfig:
    """PPO (clipped surrogate) and, as a preset of the same class, A2C: clip_range null, n_epochs 1, batch_size null."""

    name: str = "ppo"  # preset name (ppo, a2c); the keys below define the variant
    algo: str = "actor_critic"
    gamma: float = 0.99
    gae_lambda: float = 0.95  # generalised advantage estimation: 0 is one-step TD, 1 the Monte Carlo return
    lr: float = 3e-4  # one optimizer over policy, value net and log std
    optimizer: str = "adam"  # adam (eps 1e-5) | rmsprop (alpha 0.99, eps 1e-5: SB3's A2C, after Mnih et al. 2016)
    # null keeps lr constant; a number anneals it linearly from lr to lr_end over lr_decay_steps (0 allowed here)
    lr_end: Optional[float] = None
    lr_decay_steps: Optional[int] = None  # env steps of that anneal; null: the run's total_steps (kept on resume)
    n_steps: int = 2048  # env steps per sub-env in each rollout; a rollout is n_steps * env.num_envs transitions
    batch_size: Optional[int] = 64  # minibatch size; must divide the rollout; null: the whole rollout at once
    n_epochs: int = 10  # passes over the rollout per update, each over freshly shuffled minibatches
    clip_range: Optional[float] = 0.2  # PPO's epsilon; null: the plain policy-gradient loss (A2C)
    # null keeps clip_range; a number anneals it linearly to clip_range_end over lr_decay_steps, like lr (RL Zoo's lin_)
    clip_range_end: Optional[float] = None
    clip_range_vf: Optional[float] = None  # value clipping around the rollout's values; null disables it
    normalize_advantage: bool = True  # standardise the advantages within each minibatch
    ent_coef: float = 0.0  # weight of the entropy bonus
    vf_coef: float = 0.5  # weight of the value loss (mean squared error) in the joint loss
    max_grad_norm: Optional[float] = 0.5  # clipping of the joint gradient; null disables it
    target_kl: Optional[float] = None  # stop an update's epochs once a minibatch's approx KL exceeds 1.5x this
    init_log_std: float = 0.0  # initial log std of the Gaussian policy (Box actions); state-independent
    hidden_sizes: List[int] = field(default_factory=lambda: [64, 64])  # of the policy and of the value MLP
    activation: str = "tanh"  # tanh | relu
    normalize_obs: bool = False  # running mean/std of observations (saved in checkpoints, frozen in evaluation)
    normalize_reward: bool = False  # rewards divided by the running std of the discounted return
    clip_obs: float = 10.0  # normalised observations are clipped to [-clip_obs, clip_obs]
    clip_reward: float = 10.0  # scaled rewards are clipped to [-clip_reward, clip_reward]


@dataclass
class TabularQConfig:
    name: str = "tabular_q"
    algo: str = "tabular_q"
    gamma: float = 0.99
    alpha: float = 0.5  # learning rate of the TD update
    alpha_decay: float = 0.0  # alpha_t = alpha / (1 + alpha_decay * t) at env step t; 0 keeps alpha fixed
    initial_q: float = 0.0  # every entry of the table at the start


@dataclass
class HeuristicAgentConfig:
    name: str = "heuristic"
    algo: str = "heuristic"


# ----------------------------------------------------------------------------- buffers
@dataclass
class UniformBufferConfig:
    name: str = "uniform"
    capacity: int = 100_000
    n_step: int = 1  # rewards summed per stored transition (n-step returns); 1 is plain one-step DQN


@dataclass
class PrioritizedBufferConfig:
    name: str = "prioritized"
    capacity: int = 100_000
    n_step: int = 1  # rewards summed per stored transition (n-step returns); 1 is plain one-step DQN
    alpha: float = 0.6  # prioritization strength: 0 is uniform, 1 fully proportional to |TD error|
    beta_start: float = 0.4  # importance-sampling correction at step 0, annealed linearly to 1 over beta_steps
    # env steps of beta's annealing; null: the run's total_steps, fixed when it starts (resumes keep it)
    beta_steps: Optional[int] = None
    eps: float = 1e-6  # added to |TD error| so no transition has zero probability


# ----------------------------------------------------------------------------- epsilon schedules
@dataclass
class LinearScheduleConfig:
    name: str = "linear"
    start: float = 1.0
    end: float = 0.05
    duration: int = 10_000  # env steps from start to end


@dataclass
class ExponentialScheduleConfig:
    name: str = "exponential"
    start: float = 1.0
    end: float = 0.05
    decay: float = 2_000.0  # env steps per e-fold: end + (start - end) * exp(-t / decay)


@dataclass
class MultiplicativeScheduleConfig:
    name: str = "multiplicative"
    start: float = 1.0
    end: float = 0.01
    factor: float = 0.995  # applied once per finished episode, floored at end


@dataclass
class ConstantScheduleConfig:
    name: str = "constant"
    value: float = 0.1


# ----------------------------------------------------------------------------- device, eval, run
@dataclass
class DeviceConfig:
    type: str = "auto"  # auto (cuda, then mps, then cpu) | cpu | cuda | mps
    threads: int = 1  # torch intra-op threads; 1 is fastest for small nets on few cores


@dataclass
class EvalConfig:
    every: int = 5_000  # env steps between greedy evaluations during training
    episodes: int = 10  # greedy episodes per evaluation
    compare: List[str] = field(default_factory=list)  # mode=evaluate: agent presets or checkpoints, same seeds
    video: bool = False  # mode=evaluate: record episodes to MP4 in videos/ of the run directory
    video_episodes: Optional[List[int]] = None  # episode indices (0-based) to record; null: the first and the best
    video_every: int = 0  # training: record one greedy episode every this many env steps (0: never)
    epsilon: float = 0.0  # evaluation acts at random with this probability (0: greedy; Atari presets: 0.05)
    # mode=evaluate's episodes: heldout (seeds no periodic evaluation of any training seed plays) | periodic
    # (the very episodes training's evaluations played, e.g. to reproduce the score that picked best.pt)
    episode_seeds: str = "heldout"
    # step cap of evaluation and video episodes on envs without a time limit of their own (counted as truncated);
    # null: 108000 // frame_skip agent steps on ALE games (the 108,000-frame episode), else 10,000
    max_episode_steps: Optional[int] = None


@dataclass
class PlotConfig:
    window: int = 20  # episodes in the moving average (and std band) of the training return
    aggregate: str = "iqm"  # across a sweep's seeds: iqm (interquartile mean) | mean; band: 95% stratified bootstrap CI


@dataclass
class ExportConfig:
    # mode=export: torchscript (needs only torch) | onnx | both (onnx needs the export extra, rlrun[export])
    format: str = "torchscript"


@dataclass
class TrainConfig:
    nan_policy: str = "stop"  # stop: end the run at a non-finite loss | skip: drop that batch and go on


@dataclass
class RunConfig:
    env: Any = MISSING
    agent: Any = MISSING
    buffer: Any = MISSING
    schedule: Any = MISSING
    device: DeviceConfig = field(default_factory=DeviceConfig)
    seed: int = 0
    total_steps: int = 50_000  # env steps of training (summed over sub-environments)
    mode: str = "train"  # train | evaluate | plot | export
    checkpoint: Optional[str] = None  # checkpoint to load in evaluate mode, or to export the policy of
    path: Optional[str] = None  # run or sweep directory to draw learning curves of in plot mode
    save_every: int = 10_000  # env steps between checkpoints/last.pt
    stop_at_return: Optional[float] = None  # stop early once greedy eval mean reaches this
    log_every: int = 100  # env steps between TensorBoard writes of losses and epsilon
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    resume: Optional[str] = None  # a run directory to continue, with its saved config
    save_buffer: bool = True  # include the replay buffer in checkpoints/last.pt, for exact resume
    plot: PlotConfig = field(default_factory=PlotConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    tuned_settings: Optional[str] = None  # name of the conf/tuned/ file applied for this (env, agent) pair, if any


AGENT_SCHEMAS = {
    "dqn": DQNConfig,
    "reinforce": ReinforceConfig,
    "actor_critic": ActorCriticConfig,
    "tabular_q": TabularQConfig,
    "random": RandomAgentConfig,
    "heuristic": HeuristicAgentConfig,
}
REINFORCE_BASELINES = ("none", "mean", "value")
ACTIVATIONS = ("tanh", "relu")
ACTOR_CRITIC_OPTIMIZERS = ("adam", "rmsprop")
DQN_NETWORKS = ("auto", "mlp", "cnn")
BUFFER_SCHEMAS = {"uniform": UniformBufferConfig, "prioritized": PrioritizedBufferConfig}
SCHEDULE_SCHEMAS = {
    "linear": LinearScheduleConfig,
    "exponential": ExponentialScheduleConfig,
    "multiplicative": MultiplicativeScheduleConfig,
    "constant": ConstantScheduleConfig,
}
MODES = ("train", "evaluate", "plot", "export")
EXPORT_FORMATS = ("torchscript", "onnx", "both")
PLOT_AGGREGATES = ("mean", "iqm")
DEVICE_TYPES = ("auto", "cpu", "cuda", "mps")


def register_configs() -> None:
    """Put the schemas where conf/*.yaml expects them (``/schema/<group>/<name>``), with conf/config.yaml's resolvers.

    The sweep plugins are registered by the composition root (rlrun.cli.register_hydra_setup), not here: the schema
    sits at the bottom of the layers and imports nothing above it.
    """
    if not OmegaConf.has_resolver("rlrun_run_dir"):
        # hydra.run.dir: a resumed run continues in its own folder, any other run gets a fresh dated one.
        # (oc.select would not do: it returns the null of ``resume: null`` rather than the default.)
        OmegaConf.register_new_resolver("rlrun_run_dir", lambda resume, fresh: fresh if resume is None else str(resume))
    if not OmegaConf.has_resolver("rlrun_output_subdir"):
        # A resumed run writes its own Hydra files beside the original ones instead of over them.
        OmegaConf.register_new_resolver(
            "rlrun_output_subdir",
            lambda resume: ".hydra" if resume is None else f".hydra/resume-{time.strftime('%Y%m%d-%H%M%S')}",
        )
    store = ConfigStore.instance()
    store.store(name="rlrun_schema", node=RunConfig)
    store.store(group="schema/env", name="env", node=EnvConfig)
    store.store(group="schema/env", name="atari", node=AtariEnvConfig)
    store.store(group="schema/device", name="device", node=DeviceConfig)
    for group, schemas in (("agent", AGENT_SCHEMAS), ("buffer", BUFFER_SCHEMAS), ("schedule", SCHEDULE_SCHEMAS)):
        for name, schema in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=schema)


# target_update_every=null: a hard copy every this many env steps; a soft (Polyak) step after every update.
HARD_TARGET_UPDATE_EVERY = 500


def target_update_interval(cfg: Any) -> int:
    """Env steps between target updates: the configured value, else the default of the update kind.

    Polyak averaging is meant to run after every gradient update (tau is sized for that): with tau=0.005
    once every 500 env steps the target would move only 39% of the way in 50k steps.
    """
    if cfg.target_update_every is not None:
        return cfg.target_update_every
    return HARD_TARGET_UPDATE_EVERY if cfg.target_update == "hard" else cfg.train_freq


# ----------------------------------------------------------------------------- validation
def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {key} must be {allowed}.")


def validate(cfg: DictConfig, resumed: bool = False) -> None:
    """Reject values that compose fine but cannot work, naming the key and what is accepted.

    Runs before anything is built, so a bad sweep job fails in milliseconds instead of mid-training. ``resumed``:
    ``cfg`` is a saved run's config about to be continued (rlrun.loop.resumed_trainer), which the rules for
    starting a run do not bind: that run started under the rules of its day, and the resume has its own checks.
    """
    try:
        _validate(cfg, starts_a_run=cfg.mode == "train" and cfg.get("resume") is None and not resumed)
    except InterpolationResolutionError as error:  # e.g. seed=${seed}: reading any key that refers to it fails
        key = getattr(error, "full_key", None) or "a key"
        raise ConfigError(
            f"{key} cannot be resolved: {str(error).splitlines()[0]}. An ${{...}} value must name "
            f"another key that resolves without referring back to itself, e.g. total_steps=100000, not "
            f"seed=${{seed}}."
        ) from None


def _validate(cfg: DictConfig, starts_a_run: bool) -> None:
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} must be set: the chosen options leave {'it' if len(missing) == 1 else 'them'} "
            f"open (???). For example env=gym needs env.id=<a registered Gymnasium id>, e.g. env.id=Pendulum-v1."
        )
    _check(cfg.mode in MODES, "mode", cfg.mode, f"one of {', '.join(MODES)}")
    _check(cfg.seed >= 0, "seed", cfg.seed, "a non-negative integer")
    _check(cfg.train.nan_policy in ("stop", "skip"), "train.nan_policy", cfg.train.nan_policy, "stop or skip")
    _check(cfg.total_steps > 0, "total_steps", cfg.total_steps, "a positive number of env steps")
    _check(cfg.save_every > 0, "save_every", cfg.save_every, "a positive number of env steps")
    _check(cfg.log_every > 0, "log_every", cfg.log_every, "a positive number of env steps")
    _check(cfg.eval.every > 0, "eval.every", cfg.eval.every, "a positive number of env steps")
    _check(cfg.eval.episodes > 0, "eval.episodes", cfg.eval.episodes, "a positive number of episodes")
    _validate_eval_outputs(cfg)
    if cfg.mode == "plot":
        _validate_plot(cfg)
        return  # plotting reads event files only: no env, agent or device is built
    if cfg.mode == "export":
        _validate_export(cfg)
        return  # env and agent come from the checkpoint's own config
    _check(cfg.env.num_envs > 0, "env.num_envs", cfg.env.num_envs, "a positive integer")
    if cfg.env.max_episode_steps is not None:
        _check(
            cfg.env.max_episode_steps > 0,
            "env.max_episode_steps",
            cfg.env.max_episode_steps,
            "a positive integer or null (the env's own limit)",
        )
    if cfg.env.get("preprocessing") == "atari":
        _validate_atari(cfg.env)
    _check(cfg.device.type in DEVICE_TYPES, "device.type", cfg.device.type, f"one of {', '.join(DEVICE_TYPES)}")
    _check(cfg.device.threads > 0, "device.threads", cfg.device.threads, "a positive integer")

    agent = cfg.agent
    _check(agent.algo in AGENT_SCHEMAS, "agent.algo", agent.algo, f"one of {', '.join(AGENT_SCHEMAS)}")
    if agent.algo == "dqn":
        _validate_learning_rate(agent, lr_end_may_be_zero=False)
        _check(0.0 <= agent.gamma <= 1.0, "agent.gamma", agent.gamma, "a discount factor in [0, 1]")
        _check(agent.batch_size > 0, "agent.batch_size", agent.batch_size, "a positive integer")
        _check(agent.train_freq > 0, "agent.train_freq", agent.train_freq, "a positive number of env steps")
        _check(agent.gradient_steps > 0, "agent.gradient_steps", agent.gradient_steps, "a positive integer")
        _check(agent.learning_starts >= 0, "agent.learning_starts", agent.learning_starts, "zero or more env steps")
        _check(agent.target_update in ("hard", "soft"), "agent.target_update", agent.target_update, "hard or soft")
        if agent.target_update_every is not None:
            _check(
                agent.target_update_every > 0,
                "agent.target_update_every",
                agent.target_update_every,
                "a positive number of env steps, or null (hard: every 500, soft: after every update)",
            )
        _check(0.0 < agent.tau <= 1.0, "agent.tau", agent.tau, "in (0, 1]")
        _check(agent.loss in ("huber", "mse"), "agent.loss", agent.loss, "huber or mse")
        if agent.max_grad_norm is not None:
            _check(agent.max_grad_norm > 0, "agent.max_grad_norm", agent.max_grad_norm, "positive, or null to disable")
        _check_hidden_sizes(agent.hidden_sizes)
        network = agent.get("network", "auto")  # .get: configs saved before the key existed
        _check(network in DQN_NETWORKS, "agent.network", network, f"one of {', '.join(DQN_NETWORKS)}")
        _validate_buffer(cfg)
        _validate_schedule(cfg.schedule)
    if agent.algo == "reinforce":  # on-policy: neither the buffer nor the epsilon schedule applies
        _check(agent.lr > 0, "agent.lr", agent.lr, "a positive learning rate, e.g. 1e-3")
        _check(0.0 <= agent.gamma <= 1.0, "agent.gamma", agent.gamma, "a discount factor in [0, 1]")
        _check(
            agent.episodes_per_update > 0,
            "agent.episodes_per_update",
            agent.episodes_per_update,
            "a positive number of episodes",
        )
        _check(
            agent.baseline in REINFORCE_BASELINES,
            "agent.baseline",
            agent.baseline,
            f"one of {', '.join(REINFORCE_BASELINES)}",
        )
        _check(agent.entropy_coef >= 0, "agent.entropy_coef", agent.entropy_coef, "zero or more")
        _check(agent.temperature > 0, "agent.temperature", agent.temperature, "positive (1.0 is the plain softmax)")
        if agent.max_grad_norm is not None:
            _check(agent.max_grad_norm > 0, "agent.max_grad_norm", agent.max_grad_norm, "positive, or null to disable")
        _check_hidden_sizes(agent.hidden_sizes)
    if agent.algo == "actor_critic":  # on-policy: neither the buffer nor the epsilon schedule applies
        _validate_actor_critic(cfg, starts_a_run)
    if agent.algo == "tabular_q":  # no buffer; epsilon comes from the schedule group
        _check(0.0 < agent.alpha <= 1.0, "agent.alpha", agent.alpha, "a learning rate in (0, 1]")
        _check(agent.alpha_decay >= 0, "agent.alpha_decay", agent.alpha_decay, "zero (no decay) or more")
        _check(0.0 <= agent.gamma <= 1.0, "agent.gamma", agent.gamma, "a discount factor in [0, 1]")
        _validate_schedule(cfg.schedule)


def _validate_learning_rate(agent: DictConfig, lr_end_may_be_zero: bool) -> None:
    _check(agent.lr > 0, "agent.lr", agent.lr, "a positive learning rate, e.g. 1e-3")
    # .get: configs saved in checkpoints written before the learning-rate anneal existed lack the keys
    if agent.get("lr_end") is not None:
        if lr_end_may_be_zero:  # each update uses the rate at its rollout's start: 0 is not reached within the anneal
            _check(
                agent.lr_end >= 0,
                "agent.lr_end",
                agent.lr_end,
                "zero or a positive learning rate to anneal to, or null for a constant agent.lr",
            )
        else:
            _check(
                agent.lr_end > 0,
                "agent.lr_end",
                agent.lr_end,
                "a positive learning rate to anneal to (e.g. 1e-4), or null for a constant agent.lr",
            )
    if agent.get("lr_decay_steps") is not None:
        _check(
            agent.lr_decay_steps > 0,
            "agent.lr_decay_steps",
            agent.lr_decay_steps,
            "a positive number of env steps, or null (total_steps)",
        )


def _validate_actor_critic(cfg: DictConfig, starts_a_run: bool) -> None:
    agent = cfg.agent
    _validate_learning_rate(agent, lr_end_may_be_zero=True)
    _check(0.0 <= agent.gamma <= 1.0, "agent.gamma", agent.gamma, "a discount factor in [0, 1]")
    _check(
        0.0 <= agent.gae_lambda <= 1.0,
        "agent.gae_lambda",
        agent.gae_lambda,
        "in [0, 1] (0: one-step TD advantages, 1: Monte Carlo returns minus the value)",
    )
    _check(agent.n_steps > 0, "agent.n_steps", agent.n_steps, "a positive number of env steps per sub-env")
    _check(agent.n_epochs > 0, "agent.n_epochs", agent.n_epochs, "a positive number of passes over each rollout")
    rollout = agent.n_steps * cfg.env.num_envs
    if agent.batch_size is not None:
        _check(
            agent.batch_size > 0,
            "agent.batch_size",
            agent.batch_size,
            "a positive minibatch size, or null for the whole rollout",
        )
        if rollout % agent.batch_size:
            divisors = [d for d in range(1, rollout + 1) if rollout % d == 0]
            raise ConfigError(
                f"agent.batch_size={agent.batch_size} does not divide the rollout of agent.n_steps={agent.n_steps} x "
                f"env.num_envs={cfg.env.num_envs} = {rollout} transitions, so some would never be trained on. "
                f"Use a divisor of {rollout} (e.g. {', '.join(map(str, divisors[-6:-1] or divisors))}), null for the "
                f"whole rollout, or change agent.n_steps."
            )
    if agent.clip_range is not None:
        _check(
            agent.clip_range > 0,
            "agent.clip_range",
            agent.clip_range,
            "positive (PPO's epsilon, e.g. 0.2), or null for the unclipped policy gradient of A2C",
        )
    if agent.clip_range_end is not None:
        _check(
            agent.clip_range is not None and agent.clip_range_end >= 0,
            "agent.clip_range_end",
            agent.clip_range_end,
            "zero or more, with a clip_range to anneal from (not null), or null to keep clip_range",
        )
    frozen = [key for key in ("lr_end", "clip_range_end") if agent.get(key) == 0]
    decay_steps = agent.get("lr_decay_steps")
    if starts_a_run and frozen and decay_steps is not None and cfg.total_steps > decay_steps:
        # a new run only: a resume has its own check (rlrun.loop.resumed_trainer), and evaluation trains nothing
        ends = " and ".join(f"agent.{key}=0" for key in frozen)
        raise ConfigError(
            f"agent.lr_decay_steps={decay_steps} is not allowed with {ends} and total_steps={cfg.total_steps}: "
            f"the anneal would reach 0 at env step {decay_steps}, and every update after it would leave the "
            f"weights as they are. Set agent.lr_decay_steps to total_steps or more (or null: total_steps), or "
            f"anneal to a positive value."
        )
    if agent.clip_range_vf is not None:
        _check(
            agent.clip_range_vf > 0,
            "agent.clip_range_vf",
            agent.clip_range_vf,
            "positive (in the units of the value, i.e. of the scaled rewards), or null to disable value clipping",
        )
    _check(agent.ent_coef >= 0, "agent.ent_coef", agent.ent_coef, "zero or more")
    _check(agent.vf_coef > 0, "agent.vf_coef", agent.vf_coef, "positive: the value net learns only through it")
    if agent.max_grad_norm is not None:
        _check(agent.max_grad_norm > 0, "agent.max_grad_norm", agent.max_grad_norm, "positive, or null to disable")
    if agent.target_kl is not None:
        _check(agent.target_kl > 0, "agent.target_kl", agent.target_kl, "positive (e.g. 0.015), or null to disable")
    _check(agent.activation in ACTIVATIONS, "agent.activation", agent.activation, f"one of {', '.join(ACTIVATIONS)}")
    optimizer = agent.get("optimizer", "adam")  # .get: configs saved before the key existed (all Adam)
    allowed = ", ".join(ACTOR_CRITIC_OPTIMIZERS)
    _check(optimizer in ACTOR_CRITIC_OPTIMIZERS, "agent.optimizer", optimizer, f"one of {allowed}")
    _check(agent.clip_obs > 0, "agent.clip_obs", agent.clip_obs, "positive (in standard deviations, e.g. 10)")
    _check(agent.clip_reward > 0, "agent.clip_reward", agent.clip_reward, "positive (e.g. 10)")
    _check_hidden_sizes(agent.hidden_sizes)


def _check_hidden_sizes(hidden_sizes: List[int]) -> None:
    # an interpolation (agent.hidden_sizes=${seed}) skips the schema's list type, so the type is checked here too
    is_list = isinstance(hidden_sizes, (list, tuple, ListConfig))
    _check(
        is_list and len(hidden_sizes) > 0 and all(isinstance(h, int) and h > 0 for h in hidden_sizes),
        "agent.hidden_sizes",
        list(hidden_sizes) if is_list else hidden_sizes,
        "a non-empty list of positive layer widths, e.g. [128,128]",
    )


def _validate_atari(env: DictConfig) -> None:
    _check(
        0.0 <= env.repeat_action_probability <= 1.0,
        "env.repeat_action_probability",
        env.repeat_action_probability,
        "a probability in [0, 1] (0.25 is ALE v5's default, 0 deterministic)",
    )
    _check(env.noop_max >= 0, "env.noop_max", env.noop_max, "zero (no random no-ops at reset) or more")
    _check(env.frame_skip > 0, "env.frame_skip", env.frame_skip, "a positive number of emulator frames, e.g. 4")
    _check(env.screen_size > 0, "env.screen_size", env.screen_size, "a positive number of pixels, e.g. 84")
    _check(env.frame_stack > 0, "env.frame_stack", env.frame_stack, "a positive number of frames, e.g. 4")


def _validate_eval_outputs(cfg: DictConfig) -> None:
    # .get: configs saved in checkpoints written before these keys existed lack them
    cap = eval_step_cap(cfg)
    _check(
        cap > 0,
        "eval.max_episode_steps",
        cap,
        "a positive number of env steps (the cap of greedy episodes on envs without a time limit)",
    )
    epsilon = eval_epsilon(cfg)
    _check(
        0.0 <= epsilon <= 1.0,
        "eval.epsilon",
        epsilon,
        "a probability in [0, 1] (0: greedy evaluation; 0.05 is the usual Atari choice)",
    )
    episode_seeds = cfg.eval.get("episode_seeds", EvalConfig.episode_seeds)
    _check(
        episode_seeds in ("heldout", "periodic"),
        "eval.episode_seeds",
        episode_seeds,
        "heldout (mode=evaluate plays episodes no periodic evaluation played) or periodic (the episodes "
        "training's evaluations played)",
    )
    video_every = cfg.eval.get("video_every", 0)
    _check(
        video_every >= 0,
        "eval.video_every",
        video_every,
        "zero (no videos while training) or a positive number of env steps",
    )
    if cfg.eval.get("video_episodes") is not None:
        indices = list(cfg.eval.video_episodes)
        _check(
            len(indices) > 0 and all(0 <= i < cfg.eval.episodes for i in indices),
            "eval.video_episodes",
            indices,
            f"null (the first and the best episode) or a non-empty list of episode indices in "
            f"0..{cfg.eval.episodes - 1} (eval.episodes={cfg.eval.episodes})",
        )


# Evaluation episodes of envs without a time limit of their own stop here (eval.max_episode_steps=null).
EVAL_STEP_CAP = 10_000
# An ALE episode is at most 108,000 emulator frames, 30 minutes of play: ALE v5's max_num_frames_per_episode,
# which ends training and evaluation episodes in the emulator itself.
ALE_EPISODE_FRAMES = 108_000


def eval_step_cap(cfg: DictConfig) -> int:
    """``eval.max_episode_steps``; when null (or absent, in configs saved before the key existed) the ALE
    protocol's ``108000 // frame_skip`` agent steps for ALE games, so evaluation ends where training does, and
    ``EVAL_STEP_CAP`` for other envs."""
    cap = cfg.eval.get("max_episode_steps")
    if cap is not None:
        return cap
    frame_skip = _ale_frame_skip(cfg.env)
    return EVAL_STEP_CAP if frame_skip is None else ALE_EPISODE_FRAMES // frame_skip


def _ale_frame_skip(env: DictConfig) -> int | None:
    """Emulator frames per agent step of an ALE game, None for other envs (or a frame skip validation refuses).

    The Atari preset skips ``env.frame_skip`` frames; a raw ``ALE/...`` id lets the emulator skip (v5: 4). For a
    random skip ``(low, high)`` it is ``low``: the most agent steps 108,000 frames can take, so the emulator's
    own cap ends the episode.
    """
    if env.get("preprocessing") == "atari":
        skip = env.frame_skip
    elif str(env.get("id")).startswith("ALE/"):
        skip = (env.get("kwargs") or {}).get("frameskip", 4)
    else:
        return None
    if isinstance(skip, (list, tuple, ListConfig)) and len(skip) > 0:
        skip = min(skip)
    return skip if isinstance(skip, int) and skip > 0 else None


def eval_epsilon(cfg: DictConfig) -> float:
    """``eval.epsilon``, or its default (greedy) for configs saved before the key existed."""
    return cfg.eval.get("epsilon", EvalConfig.epsilon)


def _validate_plot(cfg: DictConfig) -> None:
    if cfg.path is None:
        raise ConfigError(
            "mode=plot needs path=DIR: a training run directory (with events.out.tfevents.* files) or a sweep "
            "directory (subfolders 0/, 1/, ... each a run), e.g. path=outputs/2026-11-21/10-00-00 or "
            "path=outputs/multirun/2026-11-21/10-00-00. It needs no checkpoint and trains nothing."
        )
    _check(cfg.plot.window > 0, "plot.window", cfg.plot.window, "a positive number of episodes")
    _check(
        cfg.plot.aggregate in PLOT_AGGREGATES,
        "plot.aggregate",
        cfg.plot.aggregate,
        f"one of {', '.join(PLOT_AGGREGATES)}",
    )


def _validate_export(cfg: DictConfig) -> None:
    if cfg.checkpoint is None:
        raise ConfigError(
            "mode=export needs checkpoint=PATH: a checkpoint written by training, e.g. "
            "checkpoint=outputs/2026-11-21/10-00-00/checkpoints/best.pt. The greedy policy is written beside it "
            "(best.torchscript.pt and/or best.onnx, with best.policy.json); env and agent come from the checkpoint."
        )
    _check(
        cfg.export.format in EXPORT_FORMATS,
        "export.format",
        cfg.export.format,
        f'one of {", ".join(EXPORT_FORMATS)} (onnx and both need the export extra: pip install "rlrun[export]")',
    )


def _validate_buffer(cfg: DictConfig) -> None:
    buffer = cfg.buffer
    _check(buffer.name in BUFFER_SCHEMAS, "buffer.name", buffer.name, f"one of {', '.join(BUFFER_SCHEMAS)}")
    _check(buffer.capacity > 0, "buffer.capacity", buffer.capacity, "a positive number of transitions")
    # .get: configs saved in checkpoints written before n-step returns lack the key
    n_step = buffer.get("n_step", 1)
    _check(
        isinstance(n_step, int) and 1 <= n_step <= 1000,
        "buffer.n_step",
        n_step,
        "an integer from 1 (one-step targets) to 1000, e.g. 3",
    )
    if cfg.agent.batch_size > buffer.capacity:
        raise ConfigError(
            f"agent.batch_size={cfg.agent.batch_size} is larger than buffer.capacity={buffer.capacity}: a batch "
            f"cannot hold more transitions than the buffer stores. Lower agent.batch_size or raise buffer.capacity."
        )
    if buffer.name == "prioritized":
        _check(0.0 <= buffer.alpha <= 1.0, "buffer.alpha", buffer.alpha, "in [0, 1] (0 is uniform sampling)")
        _check(0.0 <= buffer.beta_start <= 1.0, "buffer.beta_start", buffer.beta_start, "in [0, 1]")
        _check(buffer.eps > 0, "buffer.eps", buffer.eps, "a small positive number, e.g. 1e-6")
        beta_steps = buffer.get("beta_steps")
        if beta_steps is not None:
            _check(
                beta_steps > 0, "buffer.beta_steps", beta_steps, "a positive number of env steps, or null (total_steps)"
            )


def _validate_schedule(schedule: DictConfig) -> None:
    _check(schedule.name in SCHEDULE_SCHEMAS, "schedule.name", schedule.name, f"one of {', '.join(SCHEDULE_SCHEMAS)}")
    for key in ("start", "end", "value"):
        if key in schedule:
            value = schedule[key]
            _check(0.0 <= value <= 1.0, f"schedule.{key}", value, "an epsilon in [0, 1]")
    if schedule.name == "linear":
        _check(schedule.duration > 0, "schedule.duration", schedule.duration, "a positive number of env steps")
    if schedule.name == "exponential":
        _check(schedule.decay > 0, "schedule.decay", schedule.decay, "a positive number of env steps")
    if schedule.name == "multiplicative":
        _check(0.0 < schedule.factor <= 1.0, "schedule.factor", schedule.factor, "in (0, 1]")


# Keys a resumed run may change: how long and how it is watched, not what is learned.
RESUMABLE_KEYS = ("total_steps", "eval", "save_every", "save_buffer", "device", "log_every", "resume")


def load_config(overrides: list[str]) -> DictConfig:
    """Compose conf/ with command-line style overrides and validate, as the CLI does, without running.

    Hydra's and OmegaConf's own errors come back as :class:`ConfigError` with their message, so callers
    (and the fuzz test) see one error type for every bad input. The schemas are registered here; rlrun's sweep
    plugins (hydra/sweeper, hydra/launcher choices) only by rlrun.cli.register_hydra_setup, which tests/conftest.py
    calls: this module sits below the sweeps and does not import them.
    """
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    try:
        with initialize_config_module("rlrun.conf", version_base=None):
            cfg = compose("config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError, TypeError) as error:  # bare errors for e.g. agent=0
        raise ConfigError(f"{' '.join(overrides)}: {error}".strip()) from None
    validate(cfg)
    return cfg


# ----------------------------------------------------------------------------- overrides on a saved config
def override_keys(overrides: List[str]) -> List[str]:
    """Config keys named by command-line overrides (``a.b=1`` -> ``a.b``, ``env=x`` -> ``env``)."""
    keys = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key and not key.startswith("hydra"):
            keys.append(key)
    return keys


def merge_saved_config(saved: Dict[str, Any], current: DictConfig, keys: List[str]) -> DictConfig:
    """The config a checkpoint was trained with, with the user's command-line keys taken from ``current``."""
    merged = OmegaConf.create(saved)
    for key in keys:
        value = OmegaConf.select(current, key, throw_on_missing=False)
        if isinstance(value, DictConfig):
            value = OmegaConf.to_container(value, resolve=True)
        OmegaConf.update(merged, key, value, merge=False, force_add=True)
    return merged


def tuned_settings_line(cfg: DictConfig) -> str:
    """One line saying which conf/tuned/ file shaped this run, so a log shows where its settings came from."""
    name = cfg.get("tuned_settings")
    if name:
        return f"tuned settings: conf/tuned/{name}.yaml (command-line overrides win over it)"
    return (
        f"tuned settings: none for env={cfg.env.name} agent={cfg.agent.name} "
        f"(no conf/tuned/{cfg.env.name}_{cfg.agent.name}.yaml, or ~tuned): the groups' defaults apply"
    )


# ----------------------------------------------------------------------------- presets by name
def agent_presets() -> List[str]:
    """The option names of the ``agent`` group (conf/agent/*.yaml), as ``agent=NAME`` accepts them."""
    folder = importlib.resources.files("rlrun.conf") / "agent"
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def compose_agent_preset(name: str) -> DictConfig:
    """The ``agent`` node exactly as ``agent=NAME`` composes it, schema included.

    Works inside the ``rlrun`` command (Hydra already initialised) and from plain Python (tests, notebooks).
    """
    try:
        if GlobalHydra.instance().is_initialized():
            return compose(config_name="config", overrides=[f"agent={name}"]).agent
        with initialize_config_module("rlrun.conf", version_base=None):
            return compose(config_name="config", overrides=[f"agent={name}"]).agent
    except MissingConfigException:
        raise ConfigError(
            f"agent preset {name!r} does not exist; the presets are: {', '.join(agent_presets())} (conf/agent/)."
        ) from None
