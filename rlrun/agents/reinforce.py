"""REINFORCE (Williams 1992): Monte Carlo policy gradient over whole episodes.

A softmax policy (with a temperature) for Discrete actions, a diagonal Gaussian for Box actions. Each
update takes ``episodes_per_update`` finished episodes, weighs every step's log-probability by its
discounted return (minus an optional baseline, optionally standardised) and takes one Adam step, with
the loss computed in one batched forward pass over all the steps.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlrun.config import ReinforceConfig
from rlrun.networks import GaussianPolicyNetwork, mlp_with_head
from rlrun.policies import ArgmaxPolicy, GaussianMeanPolicy

# Chunks of the discounted-returns computation are kept short enough that gamma**length stays far from
# float64 underflow (~1e-308), so dividing by the powers of gamma loses nothing.
_SMALLEST_POWER = 1e-150


def discounted_returns(rewards: np.ndarray, gamma: float, bootstrap: float = 0.0) -> np.ndarray:
    """``G_t = r_t + gamma r_{t+1} + ... + gamma^(T-t) bootstrap`` for every step of one episode, in O(T).

    Vectorised with a reversed cumulative sum of ``gamma^k r_k``, divided by ``gamma^t``. Done over
    chunks from the end backwards (each chunk's first return carried into the previous chunk), so the
    powers never underflow however long the episode. ``bootstrap`` is the value of the state after the
    last step: 0 for a terminated episode, an estimate of it for a truncated one.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    length = len(rewards)
    returns = np.empty(length, dtype=np.float64)
    if gamma >= 1.0:
        chunk = max(length, 1)
    elif gamma <= 0.0:
        chunk = 1
    else:
        chunk = max(1, int(math.log(_SMALLEST_POWER) / math.log(gamma)))
    carry = float(bootstrap)  # the return from the step just after the current chunk
    end = length
    while end > 0:
        start = max(0, end - chunk)
        powers = gamma ** np.arange(end - start, dtype=np.float64)  # gamma^(t - start)
        tail_sums = np.cumsum((powers * rewards[start:end])[::-1])[::-1]  # sum over k >= t of gamma^(k-start) r_k
        # gamma^(end - t): how much of the carried return reaches step t
        carry_weights = gamma * powers[::-1]
        returns[start:end] = tail_sums / powers + carry_weights * carry
        carry = float(returns[start])
        end = start
    return returns


@dataclass
class Episode:
    """One finished episode as arrays; ``final_obs`` is the state after the last step."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    final_obs: np.ndarray
    truncated: bool


class EpisodeStorage:
    """Steps of the episodes being recorded, one preallocated row per sub-env, and the finished episodes.

    On-policy with several sub-envs: an episode joins the next gradient step's batch when it *starts*,
    until ``episodes_per_batch`` have joined; the batch is complete when all of them have finished. Every
    episode of a batch is thus played wholly by the policy of that gradient step, and which episodes join
    does not depend on their length (taking the first ones to finish would favour short episodes). Episodes
    that start once the batch is full are played but not recorded: the policy changes before they end.

    Rows double in length when an episode outgrows them, so storing a step is a few array writes.
    """

    def __init__(
        self,
        obs_dim: int,
        action_shape: tuple[int, ...],
        action_dtype: np.dtype,
        episodes_per_batch: int,
        capacity: int = 512,
    ):
        self.obs_dim = obs_dim
        self.action_shape = action_shape
        self.action_dtype = np.dtype(action_dtype)
        self.episodes_per_batch = episodes_per_batch
        self.capacity = capacity
        # num_envs is known at the first add() (agents are built from the single-env spaces): rows for none until then
        self.allocate(0, capacity)
        self.joined = 0  # episodes that joined the batch being collected (finished or not)
        self.finished: list[Episode] = []

    def allocate(self, num_envs: int, capacity: int) -> None:
        self.num_envs, self.capacity = num_envs, capacity
        self.obs = np.zeros((num_envs, capacity, self.obs_dim), dtype=np.float32)
        self.actions = np.zeros((num_envs, capacity, *self.action_shape), dtype=self.action_dtype)
        self.rewards = np.zeros((num_envs, capacity), dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.recording = np.zeros(num_envs, dtype=bool)  # per sub-env: its episode is in the batch
        self.at_start = np.ones(num_envs, dtype=bool)  # per sub-env: it starts an episode now

    def grow(self) -> None:
        half = self.capacity
        old = (self.obs, self.actions, self.rewards)
        self.capacity *= 2
        self.obs = np.zeros((self.num_envs, self.capacity, self.obs_dim), dtype=np.float32)
        self.actions = np.zeros((self.num_envs, self.capacity, *self.action_shape), dtype=self.action_dtype)
        self.rewards = np.zeros((self.num_envs, self.capacity), dtype=np.float64)
        self.obs[:, :half], self.actions[:, :half], self.rewards[:, :half] = old

    def add(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        num_envs = len(obs)
        if num_envs != self.num_envs:  # first step, or resumed with another env.num_envs
            self.allocate(num_envs, self.capacity)
        if self.at_start.any():
            for i in np.flatnonzero(self.at_start):  # episodes starting now join the batch while it has room
                if self.joined < self.episodes_per_batch:
                    self.recording[i] = True
                    self.joined += 1
            self.at_start[:] = False
        if self.lengths.max() >= self.capacity:
            self.grow()
        envs = np.arange(num_envs)
        # Rows not recording have length 0: their slot 0 is overwritten each step, at no extra cost.
        self.obs[envs, self.lengths] = obs.reshape(num_envs, -1)
        self.actions[envs, self.lengths] = actions
        self.rewards[envs, self.lengths] = rewards
        self.lengths += self.recording
        done = np.logical_or(terminated, truncated)
        for i in np.flatnonzero(done):
            if self.recording[i]:
                length = self.lengths[i]
                self.finished.append(
                    Episode(
                        obs=self.obs[i, :length].copy(),
                        actions=self.actions[i, :length].copy(),
                        rewards=self.rewards[i, :length].copy(),
                        final_obs=np.asarray(next_obs[i], dtype=np.float32).reshape(-1).copy(),
                        truncated=bool(truncated[i]) and not bool(terminated[i]),
                    )
                )
            self.lengths[i] = 0
            self.recording[i] = False
        self.at_start |= done

    def restart_episodes(self) -> None:
        """The envs start fresh episodes (a resume that could not continue them): drop the steps recorded of
        the old ones, which the new episodes' rewards must not be appended to. Finished episodes stay."""
        if self.num_envs == 0:
            return
        self.joined -= int(self.recording.sum())
        self.lengths[:] = 0
        self.recording[:] = False
        self.at_start[:] = True

    def batch_complete(self) -> bool:
        return len(self.finished) >= self.episodes_per_batch

    def take_finished(self) -> list[Episode]:
        """The finished episodes; the next batch starts empty (episodes under way stay out of it)."""
        episodes, self.finished = self.finished, []
        self.joined = 0
        return episodes

    # Saved with the agent so that a resumed run continues the episodes and the batch it was collecting.
    def state_dict(self) -> dict[str, Any]:
        if self.num_envs == 0:
            return {"num_envs": 0}
        longest = int(self.lengths.max())
        # Only the steps of the episodes being recorded: what lies beyond a row's length is stale
        beyond = np.arange(longest) >= self.lengths[:, None]
        obs, actions, rewards = (
            self.obs[:, :longest].copy(),
            self.actions[:, :longest].copy(),
            self.rewards[:, :longest].copy(),
        )
        obs[beyond], actions[beyond], rewards[beyond] = 0, 0, 0
        return {
            "num_envs": self.num_envs,
            "capacity": self.capacity,
            "lengths": self.lengths.tolist(),
            "recording": self.recording.tolist(),
            "at_start": self.at_start.tolist(),
            "joined": self.joined,
            "obs": torch.from_numpy(obs),
            "actions": torch.from_numpy(actions),
            "rewards": torch.from_numpy(rewards),
            "finished": [
                {
                    "obs": torch.from_numpy(e.obs),
                    "actions": torch.from_numpy(e.actions),
                    "rewards": torch.from_numpy(e.rewards),
                    "final_obs": torch.from_numpy(e.final_obs),
                    "truncated": e.truncated,
                }
                for e in self.finished
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["num_envs"] == 0:
            self.allocate(0, self.capacity)
            self.finished = []
            self.joined = 0
            return
        self.allocate(state["num_envs"], state["capacity"])
        longest = state["obs"].shape[1]
        self.obs[:, :longest] = state["obs"].numpy()
        self.actions[:, :longest] = state["actions"].numpy()
        self.rewards[:, :longest] = state["rewards"].numpy()
        self.lengths = np.asarray(state["lengths"], dtype=np.int64)
        # .get: checkpoints written before episodes joined batches at their start recorded every sub-env
        self.recording = np.asarray(state.get("recording", [True] * self.num_envs), dtype=bool)
        self.at_start = np.asarray(state.get("at_start", self.lengths == 0), dtype=bool)
        self.joined = state.get(
            "joined", min(self.episodes_per_batch, len(state["finished"]) + int((self.lengths > 0).sum()))
        )
        self.finished = [
            Episode(
                e["obs"].numpy(), e["actions"].numpy(), e["rewards"].numpy(), e["final_obs"].numpy(), e["truncated"]
            )
            for e in state["finished"]
        ]


class ReinforceAgent:
    """Monte Carlo policy gradient with an optional baseline (batch mean, or a learned state value).

    Truncation is not termination: with ``baseline=value`` a time-limit cut is bootstrapped from the
    value net's estimate of the final state; without a value net there is nothing to bootstrap from, and
    the return stops at the cut.
    """

    learns = True

    def __init__(
        self,
        cfg: ReinforceConfig,
        obs_shape: tuple[int, ...],
        action_space: gym.spaces.Discrete | gym.spaces.Box,
        device: torch.device,
        seed: int | np.random.SeedSequence,
    ):
        self.cfg = cfg
        self.device = device
        self.rng = np.random.default_rng(seed)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        obs_dim = int(np.prod(obs_shape))
        action_shape: tuple[int, ...]
        action_dtype: np.dtype
        if isinstance(action_space, gym.spaces.Discrete):
            self.n_actions = int(action_space.n)
            self.policy: nn.Module = mlp_with_head(obs_dim, cfg.hidden_sizes, self.n_actions).to(device)
            action_shape, action_dtype = (), np.dtype(np.int64)
        else:
            self.action_shape = tuple(action_space.shape)
            self.action_low = action_space.low.astype(np.float32)
            self.action_high = action_space.high.astype(np.float32)
            action_shape, action_dtype = self.action_shape, np.dtype(np.float32)
            gaussian = GaussianPolicyNetwork(obs_dim, int(np.prod(action_shape)), cfg.hidden_sizes, cfg.init_log_std)
            self.policy = gaussian.to(device)
            self.log_std: torch.Tensor = gaussian.log_std  # the policy's parameter, typed (Module attributes are not)
            self.sampled_actions: np.ndarray | None = None  # unclipped, for the log-probabilities
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr)
        self.value: nn.Module | None = None
        if cfg.baseline == "value":
            self.value = mlp_with_head(obs_dim, cfg.hidden_sizes, 1).to(device)
            self.value_optimizer = torch.optim.Adam(self.value.parameters(), lr=cfg.lr)
        self.storage = EpisodeStorage(obs_dim, action_shape, action_dtype, cfg.episodes_per_update)
        self.updates = 0

    # ------------------------------------------------------------------ acting
    def observations(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs, device=self.device, dtype=torch.float32).reshape(len(obs), -1)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, step: int, episode: int) -> np.ndarray:
        """Sample from the policy with the agent's own generator (seeded, saved in checkpoints)."""
        out = self.policy(self.observations(obs))
        if self.discrete:
            probabilities = torch.softmax(out / self.cfg.temperature, dim=1).cpu().numpy()
            # inverse-CDF sampling, one uniform per row; the clamp guards against rounding in the cumsum
            uniforms = self.rng.random((len(obs), 1))
            actions = (probabilities.cumsum(axis=1) < uniforms).sum(axis=1)
            return np.minimum(actions, self.n_actions - 1)
        means = out.cpu().numpy()
        stds = self.log_std.exp().cpu().numpy()
        samples = (means + stds * self.rng.standard_normal(means.shape)).astype(np.float32)
        self.sampled_actions = samples.reshape(len(obs), *self.action_shape)
        # the env gets actions inside its bounds; the update uses the sample the policy actually drew
        return np.clip(self.sampled_actions, self.action_low, self.action_high)

    @torch.inference_mode()
    def act_greedy(self, obs: np.ndarray) -> np.ndarray:
        """The most likely action: argmax of the logits, or the Gaussian mean clipped to the bounds."""
        out = self.policy(self.observations(obs))
        if self.discrete:
            return out.argmax(dim=1).cpu().numpy()
        means = out.cpu().numpy().reshape(len(obs), *self.action_shape)
        return np.clip(means, self.action_low, self.action_high)

    def greedy_policy(self) -> ArgmaxPolicy | GaussianMeanPolicy:
        """``act_greedy`` as a CPU module (a copy of the policy net), for ``mode=export``: the argmax action and the
        logits (temperature applied), or the clipped Gaussian mean with the mean and std."""
        network = copy.deepcopy(self.policy).cpu().eval().requires_grad_(False)
        if self.discrete:  # the logits net takes flat observations, as self.observations() gives them
            return ArgmaxPolicy(nn.Sequential(nn.Flatten(), network), "logits", temperature=self.cfg.temperature)
        return GaussianMeanPolicy(network, self.action_low, self.action_high)

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        if not self.discrete and self.sampled_actions is not None:
            actions = self.sampled_actions
        self.storage.add(obs, actions, rewards, next_obs, terminated, truncated)

    # ------------------------------------------------------------------ learning
    def update(self, step: int, episode: int) -> dict[str, torch.Tensor]:
        """One gradient step once the ``episodes_per_update`` episodes of the batch have finished."""
        if not self.storage.batch_complete():
            return {}
        return self.learn(self.storage.take_finished())

    def episode_returns(self, episodes: list[Episode]) -> np.ndarray:
        """Discounted returns of every step, episode after episode, bootstrapping truncated ones if we can."""
        bootstraps = np.zeros(len(episodes))
        truncated = [i for i, e in enumerate(episodes) if e.truncated]
        if self.value is not None and truncated:
            final_obs = np.stack([episodes[i].final_obs for i in truncated])
            with torch.no_grad():
                bootstraps[truncated] = self.value(self.observations(final_obs)).squeeze(1).cpu().numpy()
        return np.concatenate(
            [discounted_returns(e.rewards, self.cfg.gamma, bootstrap) for e, bootstrap in zip(episodes, bootstraps)]
        )

    def learn(self, episodes: list[Episode]) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        # One NumPy->torch conversion per update, every step of every episode in one batch.
        obs = self.observations(np.concatenate([e.obs for e in episodes]))
        actions = torch.as_tensor(np.concatenate([e.actions for e in episodes]), device=self.device)
        returns = torch.as_tensor(self.episode_returns(episodes), device=self.device, dtype=torch.float32)
        metrics: dict[str, torch.Tensor] = {}

        weights = returns
        if cfg.baseline == "mean":
            weights = returns - returns.mean()
        elif self.value is not None:
            values = self.value(obs).squeeze(1)
            value_loss = F.mse_loss(values, returns)
            self.value_optimizer.zero_grad(set_to_none=True)
            value_loss.backward()
            if cfg.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(self.value.parameters(), cfg.max_grad_norm)
            self.value_optimizer.step()
            weights = returns - values.detach()
            metrics["losses/value_loss"] = value_loss.detach()
        if cfg.normalize_returns and len(weights) > 1:
            weights = (weights - weights.mean()) / (weights.std() + 1e-8)

        log_probs, entropy = self.log_probs_and_entropy(obs, actions)
        policy_loss = -(weights * log_probs).mean()
        loss = policy_loss - cfg.entropy_coef * entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        metrics["losses/policy_loss"] = policy_loss.detach()
        metrics["charts/entropy"] = entropy.detach()
        return metrics

    def log_probs_and_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of each taken action and the mean policy entropy, in one forward pass."""
        out = self.policy(obs)
        if self.discrete:
            log_all = F.log_softmax(out / self.cfg.temperature, dim=1)
            log_probs = log_all.gather(1, actions.long().unsqueeze(1)).squeeze(1)
            entropy = -(log_all.exp() * log_all).sum(dim=1).mean()
            return log_probs, entropy
        log_std = self.log_std
        actions = actions.reshape(len(obs), -1)
        z = (actions - out) / log_std.exp()
        log_probs = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(dim=1)
        entropy = (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum()
        return log_probs, entropy

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self, include_replay: bool = False) -> dict[str, Any]:
        state = {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            "rng": self.rng.bit_generator.state,
            "storage": self.storage.state_dict(),
        }
        if self.value is not None:
            state["value"] = self.value.state_dict()
            state["value_optimizer"] = self.value_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = state["updates"]
        self.rng.bit_generator.state = state["rng"]
        self.storage.load_state_dict(state["storage"])
        if self.value is not None:
            self.value.load_state_dict(state["value"])
            self.value_optimizer.load_state_dict(state["value_optimizer"])

    def episodes_restarted(self) -> None:
        self.storage.restart_episodes()
