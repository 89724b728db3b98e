"""The actor-critic family: PPO (Schulman et al. 2017) and A2C (Mnih et al. 2016) as one class.

Every ``n_steps`` env steps per sub-env the agent has a rollout of ``n_steps * num_envs`` transitions played by one
policy. Generalised advantage estimation (Schulman et al. 2016) turns it into advantages and value targets, and
``n_epochs`` passes over shuffled minibatches minimise ``policy loss + vf_coef * value loss - ent_coef * entropy``
with one optimizer (Adam, or RMSprop). PPO's policy loss is the clipped surrogate; with ``clip_range`` null it is the
plain policy gradient ``-A log pi(a|s)``, and with one epoch over the whole rollout that is A2C (conf/agent/a2c.yaml).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlrun.agents.running_stats import EPSILON, ObservationNormalizer, RewardScaler
from rlrun.config import ActorCriticConfig
from rlrun.errors import ConfigError, TrainingDiverged
from rlrun.networks import ActorCriticNetworks, FlatParameters, NumpyMLP, linear_layers
from rlrun.policies import ArgmaxPolicy, GaussianMeanPolicy, NormalizedObservationPolicy

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def generalized_advantages(
    rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_values: np.ndarray, gamma: float, gae_lambda: float
) -> tuple[np.ndarray, np.ndarray]:
    """GAE advantages and the value targets ``advantages + values``, arrays of shape ``(n_steps, num_envs)``.

    ``dones[t]``: the episode ended at step t (terminated or truncated), so nothing flows back across it;
    a truncated step's reward already holds ``gamma * V(true final obs)``. ``last_values``: V of the
    observation after the rollout's last step.
    """
    advantages = np.zeros_like(values)
    running = np.zeros_like(last_values)
    next_values = last_values
    for t in range(len(rewards) - 1, -1, -1):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * not_done * next_values - values[t]
        running = delta + gamma * gae_lambda * not_done * running
        advantages[t] = running
        next_values = values[t]
    return advantages, advantages + values


def make_optimizer(name: str, parameters: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam with eps 1e-5 (the PPO papers' code), fused: one kernel per step rather than a dozen per parameter, as
    in the DQN family. Or RMSprop as SB3's A2C has it (alpha 0.99, eps 1e-5; Mnih et al. 2016 used RMSProp)."""
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr, alpha=0.99, eps=1e-5, foreach=True)
    return torch.optim.Adam(parameters, lr=lr, eps=1e-5, fused=True)


def policy_loss(
    log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor, clip_range: float | None
) -> torch.Tensor:
    """PPO's clipped surrogate ``-mean(min(r A, clip(r, 1 - eps, 1 + eps) A))`` with ``r = pi / pi_old``;
    with ``clip_range`` None the policy gradient ``-mean(A log pi)``."""
    if clip_range is None:
        return -(advantages * log_probs).mean()
    ratio = torch.exp(log_probs - old_log_probs)
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return -torch.min(ratio * advantages, clipped * advantages).mean()


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip_range_vf: float | None
) -> torch.Tensor:
    """Mean squared error to the GAE returns. With ``clip_range_vf``, the larger of it and the error of the value
    clipped to ``old_values +- clip_range_vf`` (OpenAI Baselines' PPO2, CleanRL): a pessimistic bound."""
    squared = (values - returns).pow(2)
    if clip_range_vf is None:
        return squared.mean()
    clipped = old_values + torch.clamp(values - old_values, -clip_range_vf, clip_range_vf)
    return torch.max(squared, (clipped - returns).pow(2)).mean()


def explained_variance(predicted: np.ndarray, targets: np.ndarray) -> float:
    """``1 - Var(targets - predicted) / Var(targets)``: 1 is a perfect value net, 0 no better than a constant."""
    variance = targets.var()
    return math.nan if variance == 0 else float(1.0 - (targets - predicted).var() / variance)


class Rollout:
    """One rollout, preallocated: rows are env steps, columns sub-envs (allocated at the first step)."""

    def __init__(self, n_steps: int, obs_dim: int, action_shape: tuple[int, ...], action_dtype: np.dtype):
        self.n_steps, self.obs_dim = n_steps, obs_dim
        self.action_shape, self.action_dtype = action_shape, np.dtype(action_dtype)
        self.num_envs = 0
        self.position = 0  # rows filled

    def allocate(self, num_envs: int) -> None:
        shape = (self.n_steps, num_envs)
        self.num_envs = num_envs
        self.obs = np.zeros((*shape, self.obs_dim), dtype=np.float32)
        self.actions = np.zeros((*shape, *self.action_shape), dtype=self.action_dtype)
        self.log_probs = np.zeros(shape, dtype=np.float32)
        self.values = np.zeros(shape, dtype=np.float32)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.dones = np.zeros(shape, dtype=np.float32)
        self.last_values = np.zeros(num_envs, dtype=np.float32)
        self.position = 0

    @property
    def full(self) -> bool:
        return self.num_envs > 0 and self.position == self.n_steps

    ARRAYS = ("obs", "actions", "log_probs", "values", "rewards", "dones")

    def state_dict(self) -> dict[str, Any]:
        if self.num_envs == 0:
            return {"num_envs": 0}
        rows = {name: torch.from_numpy(getattr(self, name)[: self.position].copy()) for name in self.ARRAYS}
        return {
            "num_envs": self.num_envs,
            "position": self.position,
            **rows,
            "last_values": torch.from_numpy(self.last_values.copy()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["num_envs"] == 0:
            self.num_envs, self.position = 0, 0
            return
        self.allocate(state["num_envs"])
        self.position = state["position"]
        for name in self.ARRAYS:
            getattr(self, name)[: self.position] = state[name].numpy()
        self.last_values[:] = state["last_values"].numpy()


class ActorCriticAgent:
    """On-policy actor-critic: a categorical policy for Discrete actions, a diagonal Gaussian for Box actions.

    Truncation is not termination: at a time-limit cut the step's reward is bootstrapped with
    ``gamma * V(true final obs)`` and the advantage recursion stops there; at termination it just stops.
    Box actions are clipped to the bounds for the env only; log-probabilities are of the unclipped sample.
    """

    learns = True

    def __init__(
        self,
        cfg: ActorCriticConfig,
        obs_shape: tuple[int, ...],
        action_space: gym.spaces.Discrete | gym.spaces.Box,
        device: torch.device,
        seed: int | np.random.SeedSequence,
        learning_rate: Callable[[int], float] | None = None,
        clip_range: Callable[[int], float] | None = None,
        skip_nonfinite_loss: bool = False,
    ):
        """``learning_rate`` and ``clip_range`` map the env step to the optimizer's step size (agent.lr_end) and to
        PPO's epsilon (agent.clip_range_end); None keeps ``cfg.lr`` and ``cfg.clip_range``. ``skip_nonfinite_loss``
        (train.nan_policy=skip) drops a minibatch whose loss is not finite instead of stopping the run."""
        self.cfg = cfg
        self.skip_nonfinite_loss = skip_nonfinite_loss
        self.skipped_batches = 0
        self.device = device
        self.learning_rate = learning_rate
        self.clip_range_schedule = clip_range
        self.clip_range = cfg.clip_range  # this update's epsilon
        self.rng = np.random.default_rng(seed)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.obs_dim = int(np.prod(obs_shape))
        action_shape: tuple[int, ...]
        action_dtype: np.dtype
        if isinstance(action_space, gym.spaces.Discrete):
            self.n_actions = int(action_space.n)
            outputs, action_shape, action_dtype = self.n_actions, (), np.dtype(np.int64)
        else:
            self.action_shape = tuple(action_space.shape)
            self.action_low = action_space.low.astype(np.float32)
            self.action_high = action_space.high.astype(np.float32)
            action_shape, action_dtype = self.action_shape, np.dtype(np.float32)
            outputs = int(np.prod(action_shape))
        self.networks = ActorCriticNetworks(
            self.obs_dim,
            outputs,
            cfg.hidden_sizes,
            cfg.activation,
            gaussian=not self.discrete,
            init_log_std=cfg.init_log_std,
        ).to(device)
        # One buffer for every weight and one for every gradient: clipping and the optimizer step are then one
        # op each over one tensor rather than a loop over a dozen small ones (rlrun.networks.FlatParameters)
        self.flat_parameters = FlatParameters(list(self.networks.parameters()))
        self.parameters = self.flat_parameters.parameters  # the modules' own, each a view of the flat buffer
        self.optimizer = make_optimizer(cfg.optimizer, [self.flat_parameters.flat], cfg.lr)
        # Acting computes one step's observations (num_envs rows): on the CPU the two MLPs' NumPy views skip
        # torch's per-op dispatch, several times the arithmetic at that size (rlrun.networks.NumpyMLP). Built
        # after the flat buffer, so the views look at the weights' final home.
        self.numpy_policy = self.numpy_value = None
        if device.type == "cpu":
            self.numpy_policy = NumpyMLP(linear_layers(self.networks.policy), cfg.activation)
            self.numpy_value = NumpyMLP(linear_layers(self.networks.value), cfg.activation)
        self.obs_normalizer = ObservationNormalizer(self.obs_dim, cfg.clip_obs) if cfg.normalize_obs else None
        self.reward_scaler = RewardScaler(cfg.gamma, cfg.clip_reward) if cfg.normalize_reward else None
        self.rollout = Rollout(cfg.n_steps, self.obs_dim, action_shape, action_dtype)
        self.pending: tuple[np.ndarray, ...] | None = None  # what act() computed for the step observe() stores
        self.updates = 0

    # ------------------------------------------------------------------ acting
    def policy_input(self, obs: np.ndarray) -> np.ndarray:
        """Flattened float32 observations, normalised with the current (not updated) statistics if enabled."""
        flat = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        return flat if self.obs_normalizer is None else self.obs_normalizer(flat)

    def numpy_pays_for(self, rows: int) -> bool:
        return self.numpy_policy is not None and self.numpy_policy.pays_for(rows)

    def policy_and_values(self, policy_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The policy's output (logits or Gaussian mean) and V for acting, float32 arrays, through NumPy when
        that pays (equal to the modules' up to float32 rounding; the update recomputes both in torch)."""
        if self.numpy_pays_for(len(policy_obs)):
            assert self.numpy_policy is not None and self.numpy_value is not None
            return self.numpy_policy(policy_obs), self.numpy_value(policy_obs)[:, 0]
        with torch.inference_mode():
            obs_t = torch.as_tensor(policy_obs, device=self.device)
            return self.networks.policy_output(obs_t).cpu().numpy(), self.networks.state_value(obs_t).cpu().numpy()

    def values_of(self, policy_obs: np.ndarray) -> np.ndarray:
        if self.numpy_pays_for(len(policy_obs)):
            assert self.numpy_value is not None
            return self.numpy_value(policy_obs)[:, 0]
        with torch.inference_mode():
            obs_t = torch.as_tensor(policy_obs, device=self.device)
            return self.networks.state_value(obs_t).cpu().numpy()

    def act(self, obs: np.ndarray, step: int, episode: int) -> np.ndarray:
        """Sample with the agent's own generator (seeded, saved in checkpoints); remember log pi and V for observe."""
        if self.obs_normalizer is not None:  # training observations update the statistics; evaluation's never do
            self.obs_normalizer.update(np.asarray(obs, dtype=np.float64).reshape(len(obs), -1))
        policy_obs = self.policy_input(obs)
        out, values = self.policy_and_values(policy_obs)
        rows = np.arange(len(obs))
        if self.discrete:
            shifted = out - out.max(axis=1, keepdims=True)
            log_all = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # log_softmax
            # inverse-CDF sampling, one uniform per row; the clamp guards against rounding in the cumsum
            uniforms = self.rng.random((len(obs), 1))
            actions = np.minimum((np.exp(log_all).cumsum(axis=1) < uniforms).sum(axis=1), self.n_actions - 1)
            self.pending = (policy_obs, actions, log_all[rows, actions], values)
            return actions
        assert self.networks.log_std is not None  # a Gaussian head: Box actions
        log_std = self.networks.log_std.detach().cpu().numpy()
        noise = self.rng.standard_normal((len(obs), len(log_std)))
        samples = (out + np.exp(log_std) * noise).astype(np.float32)
        log_probs = (-0.5 * noise**2 - log_std - HALF_LOG_2PI).sum(axis=1)
        self.pending = (policy_obs, samples, log_probs, values)
        # the env gets actions inside its bounds; the update uses the sample the policy actually drew
        return np.clip(samples.reshape(len(obs), *self.action_shape), self.action_low, self.action_high)

    def act_greedy(self, obs: np.ndarray) -> np.ndarray:
        """The most likely action: argmax of the logits, or the Gaussian mean clipped to the bounds."""
        policy_obs = self.policy_input(obs)
        if self.numpy_pays_for(len(policy_obs)):
            assert self.numpy_policy is not None
            out = self.numpy_policy(policy_obs)
        else:
            with torch.inference_mode():
                out = self.networks.policy_output(torch.as_tensor(policy_obs, device=self.device)).cpu().numpy()
        if self.discrete:
            return out.argmax(axis=1)
        return np.clip(out.reshape(len(obs), *self.action_shape), self.action_low, self.action_high)

    def greedy_policy(self) -> nn.Module:
        """``act_greedy`` as a CPU module (copies of the policy MLP and log std), for ``mode=export``: the argmax
        action and the logits, or the clipped Gaussian mean with the mean and std; behind the frozen observation
        statistics when ``agent.normalize_obs`` is on."""
        networks = copy.deepcopy(self.networks).cpu().eval().requires_grad_(False)
        network = nn.Sequential(nn.Flatten(), networks.policy)  # the MLP takes flat observations (policy_input)
        if self.discrete:
            policy: nn.Module = ArgmaxPolicy(network, "logits")
        else:
            policy = GaussianMeanPolicy(network, self.action_low, self.action_high, log_std=networks.log_std)
        if self.obs_normalizer is None:
            return policy
        stats = self.obs_normalizer.stats
        return NormalizedObservationPolicy(policy, stats.mean, stats.var, EPSILON, self.obs_normalizer.clip)

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        """Store the step act() chose; ``next_obs`` holds each finished episode's true final observation."""
        assert self.pending is not None, "observe() stores the step that act() chose"
        policy_obs, sampled, log_probs, values = self.pending
        self.pending = None
        rollout = self.rollout
        if rollout.num_envs != len(obs):
            rollout.allocate(len(obs))
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        done = terminated | truncated
        rewards = np.asarray(rewards, dtype=np.float64)
        if self.reward_scaler is not None:
            rewards = self.reward_scaler(rewards, done)
        cut = truncated & ~terminated
        if cut.any():  # a time-limit cut: the return goes on past it, estimated by the value of the final obs
            rewards = rewards + self.cfg.gamma * self.values_at(next_obs, cut)
        row = rollout.position
        rollout.obs[row] = policy_obs
        rollout.actions[row] = sampled.reshape(rollout.actions[row].shape)
        rollout.log_probs[row], rollout.values[row] = log_probs, values
        rollout.rewards[row], rollout.dones[row] = rewards, done
        rollout.position += 1
        if rollout.full:
            rollout.last_values[:] = self.values_of(self.policy_input(next_obs))

    def values_at(self, next_obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """V of ``next_obs`` for the marked sub-envs, 0 elsewhere (only those rows are computed)."""
        values = np.zeros(len(next_obs))
        values[rows] = self.values_of(self.policy_input(np.asarray(next_obs)[rows]))
        return values

    # ------------------------------------------------------------------ learning
    def update(self, step: int, episode: int) -> dict[str, float]:
        """Learn from the rollout once it is complete; nothing otherwise."""
        if not self.rollout.full:
            return {}
        metrics = {}
        # the values at the env step where this rollout began (CleanRL's anneal): the end values are never used
        rollout_start = max(step - self.cfg.n_steps * self.rollout.num_envs, 0)
        if self.learning_rate is not None:
            lr = self.learning_rate(rollout_start)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            metrics["train/lr"] = lr
        if self.clip_range_schedule is not None:
            self.clip_range = metrics["train/clip_range"] = self.clip_range_schedule(rollout_start)
        metrics.update(self.learn())
        self.rollout.position = 0
        return metrics

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """log pi(a|s), the policy's entropy at each s, and V(s), in one pass over the minibatch."""
        out = self.networks.policy_output(obs)
        values = self.networks.state_value(obs)
        if self.discrete:
            log_all = F.log_softmax(out, dim=1)
            log_probs = log_all.gather(1, actions.long().unsqueeze(1)).squeeze(1)
            entropy = -(log_all.exp() * log_all).sum(dim=1)
            return log_probs, entropy, values
        log_std = self.networks.log_std
        assert log_std is not None  # a Gaussian head: Box actions
        z = (actions - out) / log_std.exp()
        log_probs = (-0.5 * z.pow(2) - log_std - HALF_LOG_2PI).sum(dim=1)
        entropy = (log_std + 0.5 + HALF_LOG_2PI).sum().expand(len(obs))
        return log_probs, entropy, values

    def learn(self) -> dict[str, float]:
        cfg, rollout = self.cfg, self.rollout
        advantages, returns = generalized_advantages(
            rollout.rewards, rollout.values, rollout.dones, rollout.last_values, cfg.gamma, cfg.gae_lambda
        )
        size = rollout.n_steps * rollout.num_envs

        # one NumPy -> torch conversion per update: the rollout flattened to (size, ...)
        def to_tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(array.reshape(size, *array.shape[2:]), device=self.device)

        obs, actions = to_tensor(rollout.obs), to_tensor(rollout.actions)
        old_log_probs, old_values = to_tensor(rollout.log_probs), to_tensor(rollout.values)
        advantages_t, returns_t = to_tensor(advantages), to_tensor(returns)
        batch_size = cfg.batch_size or size
        totals = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0, "clip_fraction": 0.0}
        minibatches, epochs_done, stopped = 0, 0, False  # epochs_done: whole epochs in which a step was taken
        flat = (obs, actions, old_log_probs, old_values, advantages_t, returns_t)
        for _ in range(cfg.n_epochs):
            # one gather per tensor and epoch; each minibatch is then a slice (a view), not a gather of its own
            order = torch.as_tensor(self.rng.permutation(size), device=self.device)
            shuffled = [tensor[order] for tensor in flat]
            stepped = False
            for start in range(0, size, batch_size):
                mb_obs, mb_actions, mb_old_log_probs, mb_old_values, mb_advantages, mb_returns = (
                    tensor[start : start + batch_size] for tensor in shuffled
                )
                log_probs, entropy, values = self.evaluate_actions(mb_obs, mb_actions)
                if cfg.normalize_advantage and len(mb_advantages) > 1:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
                pg_loss = policy_loss(log_probs, mb_old_log_probs, mb_advantages, self.clip_range)
                v_loss = value_loss(values, mb_old_values, mb_returns, cfg.clip_range_vf)
                entropy = entropy.mean()
                with torch.no_grad():
                    log_ratio = log_probs - mb_old_log_probs
                    ratio = log_ratio.exp()
                    approx_kl = ((ratio - 1.0) - log_ratio).mean()  # the low-variance k3 estimator of KL(old||new)
                    clip_fraction = (
                        ((ratio - 1.0).abs() > self.clip_range).float().mean()
                        if self.clip_range is not None
                        else torch.zeros((), device=self.device)
                    )
                    # one device -> host read per minibatch for all five metrics
                    read = dict(zip(totals, torch.stack([pg_loss, v_loss, entropy, approx_kl, clip_fraction]).tolist()))
                if not math.isfinite(read["policy_loss"] + read["value_loss"] + read["entropy"]):
                    # read back as floats for the metrics anyway: checking them costs no extra device sync
                    if not self.skip_nonfinite_loss:
                        raise TrainingDiverged(
                            f"the PPO loss is not finite (policy {read['policy_loss']}, "
                            f"value {read['value_loss']}, entropy {read['entropy']})"
                        )
                    self.skipped_batches += 1  # train.nan_policy=skip: leave the weights as they are
                    continue
                for key, value in read.items():
                    totals[key] += value
                minibatches += 1
                if cfg.target_kl is not None and read["approx_kl"] > 1.5 * cfg.target_kl:
                    stopped = True  # SB3's rule: this minibatch is not stepped, and the update ends
                    break
                loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy
                self.flat_parameters.zero_grad()
                loss.backward()
                if cfg.max_grad_norm is not None:
                    self.flat_parameters.clip_grad_norm_(cfg.max_grad_norm)
                self.optimizer.step()
                stepped = True
            if stopped:
                break
            epochs_done += stepped
        self.updates += 1
        # no loss entries when every minibatch was skipped (train.nan_policy=skip): nothing was trained
        metrics = {f"losses/{key}": total / minibatches for key, total in totals.items()} if minibatches else {}
        if self.skipped_batches:
            metrics["train/skipped_batches"] = self.skipped_batches
        metrics["losses/explained_variance"] = explained_variance(rollout.values.ravel(), returns.ravel())
        metrics["train/epochs"] = float(epochs_done)
        if self.networks.log_std is not None:  # a Gaussian head: Box actions
            metrics["train/action_std"] = float(self.networks.log_std.detach().exp().mean())
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self, include_replay: bool = False) -> dict[str, Any]:
        """Networks, statistics and, always, the rollout being collected (small: one rollout at most)."""
        state = {
            "networks": self.networks.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            "skipped_batches": self.skipped_batches,
            "rng": self.rng.bit_generator.state,
            "rollout": self.rollout.state_dict(),
        }
        if self.obs_normalizer is not None:
            state["obs_normalizer"] = self.obs_normalizer.state_dict()
        if self.reward_scaler is not None:
            state["reward_scaler"] = self.reward_scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, normalizer, flag in (
            ("obs_normalizer", self.obs_normalizer, "normalize_obs"),
            ("reward_scaler", self.reward_scaler, "normalize_reward"),
        ):
            if (key in state) != (normalizer is not None):  # a policy without its statistics acts on other inputs
                raise ConfigError(
                    f"this checkpoint was trained with agent.{flag}={str(key in state).lower()} but the agent being "
                    f"built has agent.{flag}={str(normalizer is not None).lower()}: its saved statistics "
                    f"{'would be ignored' if key in state else 'are missing'}. Keep the checkpoint's agent settings."
                )
        self.networks.load_state_dict(state["networks"])
        self.optimizer.load_state_dict(self.flat_parameters.flat_optimizer_state(state["optimizer"]))
        if isinstance(self.optimizer, torch.optim.Adam):
            for group in self.optimizer.param_groups:  # checkpoints saved before fused Adam restore fused=None
                group["fused"] = True
        self.updates = state["updates"]
        self.skipped_batches = state.get("skipped_batches", 0)
        self.rng.bit_generator.state = state["rng"]
        self.rollout.load_state_dict(state["rollout"])
        if self.obs_normalizer is not None:
            self.obs_normalizer.load_state_dict(state["obs_normalizer"])
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(state["reward_scaler"])

    def episodes_restarted(self) -> None:
        """The rollout's last steps lead into states the envs no longer hold: drop the rollout and start anew."""
        self.rollout.position = 0
        if self.reward_scaler is not None and self.reward_scaler.returns is not None:
            self.reward_scaler.returns[:] = 0.0
