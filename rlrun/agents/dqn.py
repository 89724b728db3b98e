"""The DQN family: one class, with switches for Double DQN, the dueling head and the target update.

Vanilla DQN (Mnih et al. 2015), Double DQN (van Hasselt et al. 2016), Dueling DQN (Wang et al. 2016)
and prioritized replay (Schaul et al. 2016, through the buffer's weights and priorities) are all this
class; conf/agent/*.yaml presets only flip switches.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from rlrun.buffers import Batch, PrioritizedReplayBuffer, ReplayBuffer
from rlrun.config import DQNConfig, target_update_interval
from rlrun.errors import ConfigError, TrainingDiverged
from rlrun.networks import NumpyGreedyPolicy, QNetwork, QNetworkGradients, is_image_shape
from rlrun.policies import ArgmaxPolicy


def multiples_in(after: int, until: int, every: int) -> range:
    """The multiples of ``every`` in ``(after, until]``: the env steps at which something periodic falls due."""
    return range((after // every + 1) * every, until + 1, every)


def td_targets(
    rewards: torch.Tensor,
    next_obs: torch.Tensor,
    terminated: torch.Tensor,
    online: nn.Module,
    target: nn.Module,
    gamma: float | torch.Tensor,
    double: bool,
) -> torch.Tensor:
    """Targets ``r + gamma * (1 - terminated) * Q_target(s', a*)``.

    ``a*`` is the target net's argmax (vanilla) or the online net's argmax (double). Only termination
    stops bootstrapping: a time-limit truncation is stored as non-terminal. For n-step transitions
    ``r`` is the discounted sum of the k rewards and ``gamma`` a tensor of ``gamma^k`` per row.
    """
    with torch.no_grad():
        next_q_target = target(next_obs)
        if double:
            best_actions = online(next_obs).argmax(dim=1, keepdim=True)
        else:
            best_actions = next_q_target.argmax(dim=1, keepdim=True)
        next_q = next_q_target.gather(1, best_actions).squeeze(1)
        return rewards + gamma * (1.0 - terminated) * next_q


def td_loss_and_gradient(
    q_taken: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, loss: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The TD loss ``mean_b(w_b * l(q_b - y_b))`` over the last (batch) axis and its derivative in ``q_taken``.

    ``l`` is ``nn.HuberLoss``'s (delta 1: ``e^2 / 2`` inside ``|e| < 1``, ``|e| - 1/2`` outside; slope
    ``clamp(e, -1, 1)``) or the squared error (slope ``2e``); ``w`` are prioritized replay's importance weights
    (ones for uniform replay). Any leading axes (population members) stay apart: each row is its own mean.
    Written out rather than left to autograd, so that the MLP's hand-written backward can start from it.
    """
    error = q_taken - targets
    if loss == "huber":
        size = error.abs()
        inside = size.clamp(max=1.0)
        elementwise = inside * (size - 0.5 * inside)
        slope = error.clamp(-1.0, 1.0)
    else:
        elementwise = error.square()
        slope = error * 2.0
    losses = (weights * elementwise).mean(dim=-1)
    return losses, slope.mul_(weights).div_(error.shape[-1])


def resolve_network(network: str, obs_shape: tuple[int, ...]) -> str:
    """``auto`` picks the CNN for image stacks ``(C, H, W)`` and the MLP for everything else."""
    if network == "auto":
        return "cnn" if is_image_shape(obs_shape) else "mlp"
    if network == "cnn" and not is_image_shape(obs_shape):
        raise ConfigError(
            f"agent.network=cnn needs image observations of shape (channels, height, width), but the env's "
            f"observations have shape {tuple(obs_shape)}. Use agent.network=auto or mlp for this env."
        )
    return network


class DQNAgent:
    """Epsilon-greedy Q-learning with a replay buffer and a target network."""

    learns = True

    def __init__(
        self,
        cfg: DQNConfig,
        obs_shape: tuple[int, ...],
        n_actions: int,
        buffer: ReplayBuffer,
        epsilon: Callable[[int, int], float],
        device: torch.device,
        seed: int | np.random.SeedSequence,
        skip_nonfinite_loss: bool = False,
        learning_rate: Callable[[int], float] | None = None,
        check_finite_every: int = 1,
    ):
        """``learning_rate`` maps the env step to Adam's step size (agent.lr_end); None keeps ``cfg.lr``.

        ``check_finite_every`` (the run's log_every): env steps between looks at whether a loss went non-finite.
        Looking costs a device sync, so the gradient steps in between only note it on the device.
        """
        self.cfg = cfg
        self.learning_rate = learning_rate
        self.skip_nonfinite_loss = skip_nonfinite_loss
        self.skipped_batches = 0
        self.check_finite_every = check_finite_every
        self.nonfinite_loss = torch.zeros((), dtype=torch.bool, device=device)  # since the last look
        self.finite_until_step = 0  # env step of the last look that found every loss finite
        self.n_actions = n_actions
        self.buffer = buffer
        # uniform replay ignores priorities: its learner is spared the TD errors' device -> host copy (a sync)
        self.prioritized = isinstance(buffer, PrioritizedReplayBuffer)
        self.epsilon = epsilon
        self.device = device
        self.rng = np.random.default_rng(seed)
        obs_dim = int(np.prod(obs_shape))
        self.network = resolve_network(cfg.network, obs_shape)
        self.online = QNetwork(obs_dim, n_actions, cfg.hidden_sizes, cfg.dueling, self.network, obs_shape).to(device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.online_parameters = list(self.online.parameters())  # .parameters() walks the modules on each call
        # the MLP's hand-written backward (built at the first gradient step: a population member never takes one,
        # and its parameters move into the population's stack first); None: the CNN, through autograd
        self.gradients: QNetworkGradients | None = None
        # fused Adam: one kernel per step instead of a dozen per parameter (4x faster for small nets on CPU)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=cfg.lr, fused=True)
        self.last_update_step = 0  # env step of the previous update() call, to count what is due
        self.target_update_every = target_update_interval(cfg)
        self.current_epsilon = epsilon(0, 0)
        # Acting on a few observations on the CPU, NumPy beats the module call 2-4x for small MLPs
        # (README, Performance); GPUs, the CNN, wide nets and large batches keep the torch path.
        use_numpy = device.type == "cpu" and self.network == "mlp" and not cfg.dueling
        self.numpy_greedy = NumpyGreedyPolicy(self.online) if use_numpy else None

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, step: int, episode: int) -> np.ndarray:
        """Epsilon-greedy, with one uniform draw per sub-env deciding both whether and where to explore.

        ``u < epsilon`` explores, and then ``u / epsilon`` is itself uniform on [0, 1): scaled by the
        number of actions it picks the random action, sparing a second RNG call per step.
        """
        epsilon = self.current_epsilon = self.epsilon(step, episode)
        draws = self.rng.random(len(obs))
        explore = draws < epsilon
        if not explore.any():
            return self.act_greedy(obs)
        scaled = (draws * (self.n_actions / min(epsilon, 1.0))).astype(np.int64)
        random_actions = np.minimum(scaled, self.n_actions - 1)  # rounding can reach n_actions
        if explore.all():  # skip the forward pass when every env explores
            return random_actions
        return np.where(explore, random_actions, self.act_greedy(obs))

    def act_greedy(self, obs: np.ndarray) -> np.ndarray:
        if self.numpy_greedy is not None and self.numpy_greedy.pays_for(len(obs)):
            return self.numpy_greedy(np.asarray(obs))
        # Images cross as uint8 (a quarter of float32) and the CNN scales them; vectors become float32.
        dtype = torch.uint8 if self.network == "cnn" and obs.dtype == np.uint8 else torch.float32
        with torch.inference_mode():
            obs_t = torch.as_tensor(obs, device=self.device, dtype=dtype)
            return self.online(obs_t).argmax(dim=1).cpu().numpy()

    def greedy_policy(self) -> ArgmaxPolicy:
        """``act_greedy`` as a CPU module (a copy of the online net), for ``mode=export``: actions and Q-values."""
        network = copy.deepcopy(self.online).cpu().eval().requires_grad_(False)
        return ArgmaxPolicy(network, "q_values", float_input=self.network != "cnn")

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> None:
        self.buffer.observe(obs, actions, rewards, next_obs, terminated, truncated)

    # ------------------------------------------------------------------ learning
    def update(self, step: int, episode: int) -> dict[str, float | torch.Tensor]:
        """Run the gradient steps and target updates due in the env steps since the last call, in env-step order.

        With ``env.num_envs=N`` one call covers N env steps; running what fell due at each of them, in the
        order a single env would have (at a shared step: the gradient step first), makes the number of
        gradient steps and target updates per env step independent of N.
        """
        cfg = self.cfg
        previous, self.last_update_step = self.last_update_step, step
        metrics: dict[str, float | torch.Tensor] = {"train/epsilon": self.current_epsilon}
        if step < cfg.learning_starts or len(self.buffer) < cfg.batch_size:
            return metrics
        after = max(previous, cfg.learning_starts - 1)  # nothing falls due before learning_starts
        target_steps = iter(multiples_in(after, step, self.target_update_every))
        next_target = next(target_steps, None)
        for learn_step in multiples_in(after, step, cfg.train_freq):
            while next_target is not None and next_target < learn_step:
                self.update_target()
                next_target = next(target_steps, None)
            if self.learning_rate is not None:  # the rate of this gradient step's own env step, whatever num_envs
                metrics["train/lr"] = self.set_learning_rate(learn_step)
            for _ in range(cfg.gradient_steps):
                metrics.update(self.learn(self.buffer.sample(learn_step)))
        while next_target is not None:
            self.update_target()
            next_target = next(target_steps, None)
        if step // self.check_finite_every > previous // self.check_finite_every:
            self.raise_if_diverged(step)
        metrics.update(self.buffer.metrics())
        return metrics

    def raise_if_diverged(self, step: int) -> None:
        """TrainingDiverged if a TD loss was non-finite since the last look (train.nan_policy=stop); one sync."""
        if bool(self.nonfinite_loss):
            raise TrainingDiverged(f"a TD loss between env steps {self.finite_until_step} and {step} was not finite")
        self.finite_until_step = step

    def set_learning_rate(self, step: int) -> float:
        assert self.learning_rate is not None  # update() calls this only with a schedule (agent.lr_end)
        lr = self.learning_rate(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def learn(self, batch: Batch) -> dict[str, float | torch.Tensor]:
        """One gradient step on a batch; feeds the new |TD errors| back to the buffer as priorities.

        The MLP's gradients come from its hand-written backward (rlrun.networks.QNetworkGradients; 1.0-1.35x
        faster than autograd here, docs/performance.md), the CNN's from autograd; both start from
        td_loss_and_gradient. The backward writes into the ``.grad`` tensors it found at the first step: never
        clear them by setting them to None (``zero_grad()``'s default), which would leave the optimizer nothing.
        """
        cfg = self.cfg
        # the CNN scales pixel values itself, from the uint8 batch
        obs, next_obs = (
            (batch.obs, batch.next_obs) if self.network == "cnn" else (batch.obs.float(), batch.next_obs.float())
        )
        if self.gradients is None and self.network == "mlp":
            self.gradients = QNetworkGradients.of(self.online)
        actions = batch.actions.unsqueeze(1)
        if self.gradients is not None:
            with torch.no_grad():
                q_values_k, kept = self.gradients.forward(obs.unsqueeze(0))  # a member axis of one
            q_values = q_values_k[0]
        else:
            q_values = self.online(obs)
        q_taken = q_values.gather(1, actions).squeeze(1)
        targets = td_targets(
            batch.rewards, next_obs, batch.terminated, self.online, self.target, batch.discounts, cfg.double
        )
        with torch.no_grad():
            loss, grad_taken = td_loss_and_gradient(q_taken.detach(), targets, batch.weights, cfg.loss)
        if self.skip_nonfinite_loss:
            if not torch.isfinite(loss):  # dropping the batch means knowing before the step: a sync per step
                self.skipped_batches += 1  # train.nan_policy=skip: drop this batch, keep its old priorities
                return {"train/skipped_batches": self.skipped_batches}
        else:  # train.nan_policy=stop: noted on the device, looked at by update() on the steps that log
            self.nonfinite_loss.logical_or_(~torch.isfinite(loss))
        if self.gradients is not None:
            with torch.no_grad():
                grad_q = torch.zeros_like(q_values_k).scatter_(2, actions.unsqueeze(0), grad_taken.view(1, -1, 1))
                self.gradients.backward(kept, grad_q)  # overwrites every .grad: nothing to zero
        else:
            self.optimizer.zero_grad(set_to_none=True)
            q_taken.backward(grad_taken)
        if cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.online_parameters, cfg.max_grad_norm)
        self.optimizer.step()
        if self.prioritized:
            td_errors = (targets - q_taken).detach()
            self.buffer.update_priorities(batch.indices, td_errors.abs().cpu().numpy())
        # Tensors, not floats: the loop converts only the values it logs, sparing a device sync per step.
        return {"losses/td_loss": loss, "losses/q_values": q_taken.detach().mean()}

    def update_target(self) -> None:
        if self.cfg.target_update == "hard":
            self.target.load_state_dict(self.online.state_dict())
            return
        with torch.no_grad():
            for target_param, online_param in zip(self.target.parameters(), self.online.parameters()):
                target_param.lerp_(online_param, self.cfg.tau)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self, include_replay: bool = False) -> dict[str, Any]:
        self.raise_if_diverged(self.last_update_step)  # a checkpoint never holds the weights of a non-finite step
        # copies: a population member's parameters are views of its population's stacked ones, and torch.save
        # would write the whole stack into each member's checkpoint (a small net: the copy costs microseconds)
        state = {
            "online": {name: tensor.clone() for name, tensor in self.online.state_dict().items()},
            "target": {name: tensor.clone() for name, tensor in self.target.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "last_update_step": self.last_update_step,
            "skipped_batches": self.skipped_batches,
            "rng": self.rng.bit_generator.state,
        }
        if include_replay:
            state["replay"] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.last_update_step = state["last_update_step"]
        self.skipped_batches = state.get("skipped_batches", 0)
        self.rng.bit_generator.state = state["rng"]
        if "replay" in state:
            self.buffer.load_state_dict(state["replay"])

    def episodes_restarted(self) -> None:
        self.buffer.episodes_restarted()
