"""A population of DQN agents that differ only in their seed (and, if asked, ``gamma``, ``tau``, ``lr`` and
``lr_end``), trained as one: the member axis of the DQN family.

Each member is a whole :class:`DQNAgent` (its replay buffer, epsilon schedule, exploration generator, and networks
whose parameters are views of the stacked ones, rlrun.networks.StackedQNetwork), so it acts greedily, evaluates and
checkpoints exactly as a solo agent. What the population adds is the hot path done once for all members: one
batched forward to act, one forward/backward over the stacked networks per gradient step, per-member gradient
clipping, and one fused Adam step over the stacked parameters (Adam is elementwise, so at one rate it equals K
Adams; members at their own rates: step_optimizer).
Members never mix: every reduction (loss mean, gradient norm) runs along the batch axis of one member.

Members may differ in the update's scalars that change no shape: ``gamma`` (each member's replay buffer stores its
own ``gamma^k`` per transition, which its targets bootstrap with), ``tau`` (one Polyak rate per member) and ``lr``
with ``lr_end`` (each member's own rate and anneal; see :meth:`DQNPopulation.step_optimizer`). Every other agent key
must be equal, since one optimizer and batch shape serve all members.
"""

from __future__ import annotations

from typing import Any, Sequence, cast

import numpy as np
import torch
from torch import nn

from rlrun.agents.dqn import DQNAgent, multiples_in, td_loss_and_gradient
from rlrun.buffers import PrioritizedReplayBuffer
from rlrun.config import MEMBER_AGENT_KEYS
from rlrun.networks import NumpyGreedyPolicy, StackedQNetwork


def population_unsupported(agent: Any) -> str | None:
    """Why this agent cannot be a population member, or None when it can."""
    if not isinstance(agent, DQNAgent):
        return f"the {type(agent).__name__} family has no member axis (only the DQN family does)"
    if agent.network != "mlp":
        return "the CNN Q-network has no member axis (MLP observations only)"
    if agent.skip_nonfinite_loss:
        return "train.nan_policy=skip drops one member's batch, which a stacked update cannot do without a sync"
    return None


class DQNPopulation:
    """K DQN agents of one config (seeds aside) with stacked networks and one optimizer."""

    def __init__(self, members: Sequence[DQNAgent]):
        reasons = {reason for reason in map(population_unsupported, members) if reason}
        if reasons:
            raise ValueError("; ".join(sorted(reasons)))
        self.members = list(members)
        self.size = len(members)
        first = members[0]
        shared = shared_keys(first)
        differing = sorted(
            key for member in members[1:] for key, value in shared_keys(member).items() if shared[key] != value
        )
        if differing:
            raise ValueError(f"population members differ in agent.{', agent.'.join(dict.fromkeys(differing))}")
        self.cfg, self.device, self.n_actions = first.cfg, first.device, first.n_actions
        self.online = StackedQNetwork([member.online for member in members])
        self.target = StackedQNetwork([member.target for member in members]).requires_grad_(False)
        for member in members:  # its NumPy views must look at the parameters' new home, the stack
            if member.numpy_greedy is not None:
                member.numpy_greedy = NumpyGreedyPolicy(member.online)
        self.parameters = list(self.online.parameters())
        self.gradients = self.online.gradients()  # the hand-written backward over the stack: no autograd graph
        self.optimizer = torch.optim.Adam(self.parameters, lr=self.cfg.lr, fused=True)
        # The members' own optimizers stay in step with the stacked one only at checkpoints (member_state_dict):
        # their parameters are views, and Adam's moments are copied across then.
        self.member_names = [name for name, _ in first.online.named_parameters()]
        self.last_update_step = first.last_update_step
        self.target_update_every = first.target_update_every
        # each member's Polyak rate, shaped to scale the leading (member) axis of any stacked parameter
        self.taus = torch.tensor([float(member.cfg.tau) for member in members], device=self.device)
        self.member_lrs = [float(member.cfg.lr) for member in members]  # each member's rate at the last gradient step
        self.lrs_differ = len({member_rate_settings(member) for member in members}) > 1
        self.previous_params: list[torch.Tensor] | None = None  # parameters before a step, when rates differ
        self.rates: torch.Tensor | None = None  # member_rates(): member_lrs on the device, as of rates_of
        self.rates_of: list[float] = []
        # uniform replay ignores priorities: its members are spared the TD errors' device -> host copy
        self.prioritized = [isinstance(member.buffer, PrioritizedReplayBuffer) for member in members]
        # Set on device at every gradient step (no sync); read by nonfinite_members() on the steps that look.
        self.nonfinite = torch.zeros(self.size, dtype=torch.bool, device=self.device)
        self.last_losses: torch.Tensor | None = None
        self.last_q_values: torch.Tensor | None = None
        self.obs_buffer: np.ndarray | None = None

    # ------------------------------------------------------------------ acting
    def act(self, obs: Sequence[np.ndarray], step: int, episodes: Sequence[int]) -> list[np.ndarray]:
        """Each member's epsilon-greedy actions, as its solo agent would draw them (its own generator, the same
        draws), with the greedy actions of every member from one batched forward pass."""
        draws, explore, epsilons = [], [], []
        for member, member_obs, episode in zip(self.members, obs, episodes):
            epsilon = member.current_epsilon = member.epsilon(step, episode)
            member_draws = member.rng.random(len(member_obs))
            draws.append(member_draws)
            explore.append(member_draws < epsilon)
            epsilons.append(epsilon)
        greedy = None if all(e.all() for e in explore) else self.act_greedy(obs)
        actions = []
        for k in range(self.size):
            if greedy is not None and not explore[k].any():
                actions.append(greedy[k])
                continue
            scaled = (draws[k] * (self.n_actions / min(epsilons[k], 1.0))).astype(np.int64)
            random_actions = np.minimum(scaled, self.n_actions - 1)
            actions.append(random_actions if greedy is None else np.where(explore[k], random_actions, greedy[k]))
        return actions

    def act_greedy(self, obs: Sequence[np.ndarray]) -> np.ndarray:
        """Greedy actions ``(K, num_envs)`` for every member's observations, in one forward pass."""
        if self.obs_buffer is None:
            self.obs_buffer = np.zeros((self.size, *np.shape(obs[0])), dtype=np.float32)
        for k, member_obs in enumerate(obs):
            self.obs_buffer[k] = member_obs
        with torch.inference_mode():
            obs_t = torch.as_tensor(self.obs_buffer, device=self.device)
            return self.online(obs_t).argmax(dim=2).cpu().numpy()

    # ------------------------------------------------------------------ learning
    def update(self, step: int) -> list[dict[str, Any]]:
        """The gradient steps and target updates due since the last call, as DQNAgent.update does them for one
        member; one metrics dict per member."""
        cfg = self.cfg
        previous, self.last_update_step = self.last_update_step, step
        for member in self.members:
            member.last_update_step = step
        metrics: list[dict[str, Any]] = [{"train/epsilon": member.current_epsilon} for member in self.members]
        if step < cfg.learning_starts or min(len(member.buffer) for member in self.members) < cfg.batch_size:
            return metrics
        after = max(previous, cfg.learning_starts - 1)
        target_steps = iter(multiples_in(after, step, self.target_update_every))
        next_target = next(target_steps, None)
        annealed = False
        for learn_step in multiples_in(after, step, cfg.train_freq):
            while next_target is not None and next_target < learn_step:
                self.update_target()
                next_target = next(target_steps, None)
            annealed = self.set_learning_rates(learn_step) or annealed
            for _ in range(cfg.gradient_steps):
                self.learn([member.buffer.sample(learn_step) for member in self.members])
        while next_target is not None:
            self.update_target()
            next_target = next(target_steps, None)
        losses, q_means = self.last_losses, self.last_q_values
        for k, member in enumerate(self.members):
            if losses is not None and q_means is not None:
                metrics[k]["losses/td_loss"] = losses[k]
                metrics[k]["losses/q_values"] = q_means[k]
            if annealed and member.learning_rate is not None:  # as a solo run: train/lr only with an anneal
                metrics[k]["train/lr"] = self.member_lrs[k]
            metrics[k].update(member.buffer.metrics())
        return metrics

    def set_learning_rates(self, learn_step: int) -> bool:
        """Each member's rate at this gradient step's env step (its anneal, or its constant lr); True if any anneals.
        Equal rates go to the optimizer itself; differing ones are applied by step_optimizer."""
        if all(member.learning_rate is None for member in self.members):
            return False
        self.member_lrs = [
            member.learning_rate(learn_step) if member.learning_rate is not None else float(member.cfg.lr)
            for member in self.members
        ]
        if not self.lrs_differ:
            for group in self.optimizer.param_groups:
                group["lr"] = self.member_lrs[0]
        return True

    def learn(self, batches: Sequence[Any]) -> None:
        """One gradient step of every member on its own batch: the stacked form of DQNAgent.learn."""
        cfg = self.cfg
        obs = torch.stack([batch.obs for batch in batches]).float()
        next_obs = torch.stack([batch.next_obs for batch in batches]).float()
        actions = torch.stack([batch.actions for batch in batches])
        rewards = torch.stack([batch.rewards for batch in batches])
        terminated = torch.stack([batch.terminated for batch in batches])
        weights = torch.stack([batch.weights for batch in batches])
        discounts = torch.stack([batch.discounts for batch in batches])
        with torch.no_grad():
            q_values, kept = self.gradients.forward(obs)
            q_taken = q_values.gather(2, actions.unsqueeze(2)).squeeze(2)
            next_q_target = self.target(next_obs)
            chooser = self.online(next_obs) if cfg.double else next_q_target
            next_q = next_q_target.gather(2, chooser.argmax(dim=2, keepdim=True)).squeeze(2)
            targets = rewards + discounts * (1.0 - terminated) * next_q
            losses, grad_taken = td_loss_and_gradient(q_taken, targets, weights, cfg.loss)  # (K,): each member's
            grad_q = torch.zeros_like(q_values).scatter_(2, actions.unsqueeze(2), grad_taken.unsqueeze(2))
            self.gradients.backward(kept, grad_q)  # overwrites every stacked .grad: nothing to zero
        if cfg.max_grad_norm is not None:
            clip_per_member(self.parameters, cfg.max_grad_norm)
        self.step_optimizer()
        self.nonfinite |= ~torch.isfinite(losses)
        self.last_losses, self.last_q_values = losses, q_taken.mean(dim=1)
        if any(self.prioritized):
            td_errors = (targets - q_taken).abs().cpu().numpy()
            for k, batch in enumerate(batches):
                if self.prioritized[k]:
                    self.members[k].buffer.update_priorities(batch.indices, td_errors[k])

    def step_optimizer(self) -> None:
        """One Adam step for every member, at each member's own learning rate.

        With equal rates this is the optimizer's step at that rate. With differing rates the step is taken at
        rate 1 and each member's slice is then pulled back to ``before + lr_k * (after - before)``: Adam's moments
        do not depend on the rate and (without weight decay) its update is the rate times a rate-free direction,
        so this is member k's own Adam step, up to float32 rounding of that difference.
        """
        if not self.lrs_differ:
            self.optimizer.step()
            return
        with torch.no_grad():
            if self.previous_params is None:
                self.previous_params = [torch.empty_like(param) for param in self.parameters]
            for before, param in zip(self.previous_params, self.parameters):
                before.copy_(param)
            for group in self.optimizer.param_groups:
                group["lr"] = 1.0
            self.optimizer.step()
            rates = self.member_rates()
            for before, param in zip(self.previous_params, self.parameters):
                param.copy_(before.lerp_(param, rates.view(-1, *([1] * (param.dim() - 1)))))

    def member_rates(self) -> torch.Tensor:
        """``member_lrs`` on the device, copied only when they changed, and on CUDA from pinned memory without
        blocking (no device sync per gradient step; the caching host allocator keeps each copy's buffer alive)."""
        if self.rates is None or self.rates_of != self.member_lrs:
            host = torch.tensor(self.member_lrs)
            if self.device.type == "cuda":
                host = host.pin_memory()
            self.rates, self.rates_of = host.to(self.device, non_blocking=True), list(self.member_lrs)
        return self.rates

    def update_target(self) -> None:
        with torch.no_grad():
            for target_param, online_param in zip(self.target.parameters(), self.online.parameters()):
                if self.cfg.target_update == "hard":
                    target_param.copy_(online_param)
                else:
                    target_param.lerp_(online_param, self.taus.view(-1, *([1] * (target_param.dim() - 1))))

    def nonfinite_members(self) -> list[int]:
        """The members whose loss has been non-finite since the start (one device sync for all of them)."""
        return np.flatnonzero(self.nonfinite.cpu().numpy()).tolist()

    # ------------------------------------------------------------------ checkpoints
    def sync_member_optimizer(self, k: int) -> None:
        """Give member ``k``'s own Adam the stacked Adam's state for its slice, so its checkpoint resumes as a
        solo run (its parameters are views already)."""
        member = self.members[k]
        member.optimizer.param_groups[0]["lr"] = self.member_lrs[k]  # its own rate (the stack's may be 1.0)
        for name, param in zip(self.member_names, member_parameters(member)):
            stacked_state = self.optimizer.state.get(self.online.stacked_parameter(name))
            if not stacked_state:
                continue
            member.optimizer.state[param] = {
                key: value.clone() if key == "step" else value[k].clone() for key, value in stacked_state.items()
            }

    def load_member_optimizers(self) -> None:
        """The reverse, after the members loaded their checkpoints: stack their Adam states into the population's."""
        for name, params in zip(self.member_names, zip(*(member_parameters(member) for member in self.members))):
            found = [member.optimizer.state.get(param) for member, param in zip(self.members, params)]
            if not all(found):
                continue
            states = cast(list[dict[str, torch.Tensor]], found)
            self.optimizer.state[self.online.stacked_parameter(name)] = {
                key: states[0][key].clone() if key == "step" else torch.stack([state[key] for state in states])
                for key in states[0]
            }


def shared_keys(member: DQNAgent) -> dict[str, Any]:
    """The agent keys every member of a population must have equal: all but MEMBER_AGENT_KEYS and
    ``lr_decay_steps``, which each member's own anneal reads (a resumed run fills it in for annealed members only)."""
    return {key: value for key, value in vars(member.cfg).items() if key not in MEMBER_AGENT_KEYS + ("lr_decay_steps",)}


def member_rate_settings(member: DQNAgent) -> tuple[Any, ...]:
    """What a member's learning rate follows: its lr, and its anneal's end and length if it anneals."""
    if member.learning_rate is None:
        return (member.cfg.lr,)
    return (member.cfg.lr, member.cfg.lr_end, member.cfg.lr_decay_steps)


def member_parameters(member: DQNAgent) -> list[nn.Parameter]:
    """A member's online parameters in ``named_parameters`` order, the order its optimizer and the stack use."""
    return [param for _, param in member.online.named_parameters()]


def clip_per_member(stacked: Sequence[torch.Tensor], max_norm: float) -> None:
    """``clip_grad_norm_`` for each member on its own: the norm of member k's gradients is taken over the k-th
    slice of every stacked parameter, never across members (a global norm would let one member's large gradient
    shrink the others' steps)."""
    grads = [param.grad for param in stacked if param.grad is not None]
    squares = torch.stack([grad.flatten(start_dim=1).pow(2).sum(dim=1) for grad in grads]).sum(dim=0)  # (K,)
    coefficients = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(coefficients.view(-1, *([1] * (grad.dim() - 1))))
