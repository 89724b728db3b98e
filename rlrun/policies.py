"""Greedy policies as self-contained torch modules: a batch of observations in, actions and their scores out.

Each agent family builds one from its own networks (``greedy_policy()``), and ``mode=export`` (rlrun/export.py)
traces it to TorchScript and ONNX. A policy calls its network's own ``forward``, so whatever the network does at
inference (the CNN's pixel scaling, the dueling combination) is in the exported graph without being written twice.

Every policy module has:

- ``input_dtype``: the torch dtype of the observations the exported graph takes;
- ``output_names``: its outputs in order, the first always ``action`` (what ``env.step`` takes, row by row);
- ``observation_normalization``: ``None``, or the statistics the module applies to observations itself (for the
  JSON sidecar; :class:`NormalizedObservationPolicy` sets it, for the actor-critic family's ``agent.normalize_obs``).
"""

from __future__ import annotations

from typing import Sequence, cast

import numpy as np
import torch
from torch import nn


class ArgmaxPolicy(nn.Module):
    """Discrete actions: the argmax of a network's scores per action (Q-values, or a softmax policy's logits).

    ``float_input`` casts observations to float32 first, as the agents do before their forward pass; off for the
    CNN, which takes uint8 frames and scales them itself. ``temperature`` divides the scores, so a softmax
    policy's second output is the logits of the distribution it samples from (the argmax is unchanged).
    """

    observation_normalization = None

    def __init__(self, network: nn.Module, scores_name: str, float_input: bool = True, temperature: float = 1.0):
        super().__init__()
        self.network = network
        self.float_input = float_input
        self.temperature = float(temperature)
        self.input_dtype = torch.float32 if float_input else torch.uint8
        self.output_names = ("action", scores_name)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.network(obs.to(torch.float32) if self.float_input else obs)
        if self.temperature != 1.0:
            scores = scores / self.temperature
        return scores.argmax(dim=1), scores


class GaussianMeanPolicy(nn.Module):
    """Box actions: a Gaussian policy's mean, clipped to the action bounds; also the unclipped mean and the std.

    The clipping is ``np.clip``'s (``min(max(mean, low), high)``), so the action equals ``act_greedy``'s.
    """

    observation_normalization = None
    input_dtype = torch.float32
    output_names = ("action", "mean", "std")
    # buffers and parameters, typed here: nn.Module's attribute lookup types them Tensor | Module
    action_low: torch.Tensor
    action_high: torch.Tensor
    log_std: torch.Tensor

    def __init__(
        self, network: nn.Module, action_low: np.ndarray, action_high: np.ndarray, log_std: nn.Parameter | None = None
    ):
        """``network`` maps observations to flat means; ``log_std`` is the state-free log std, by default the
        network's own ``log_std`` parameter (the actor-critic networks keep it beside the mean MLP instead)."""
        super().__init__()
        self.network = network
        self.log_std = cast(torch.Tensor, network.log_std) if log_std is None else log_std
        self.action_shape: Sequence[int] = tuple(action_low.shape)
        self.register_buffer("action_low", torch.as_tensor(action_low, dtype=torch.float32))
        self.register_buffer("action_high", torch.as_tensor(action_high, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean = self.network(obs.to(torch.float32)).reshape(-1, *self.action_shape)
        std = self.log_std.exp().reshape(self.action_shape).expand_as(mean)
        action = torch.minimum(torch.maximum(mean, self.action_low), self.action_high)
        return action, mean, std


class TableLookupPolicy(nn.Module):
    """Discrete observations: a Q-table's row per state number, and its argmax (first of equal values, as NumPy).

    The table keeps its own dtype (float64 for tabular Q): rounding it to float32 could merge near-equal values
    and change which action is greedy.
    """

    observation_normalization = None
    input_dtype = torch.int64
    output_names = ("action", "q_values")
    q_table: torch.Tensor  # a buffer, typed (see GaussianMeanPolicy)

    def __init__(self, q_table: np.ndarray):
        super().__init__()
        self.register_buffer("q_table", torch.as_tensor(np.array(q_table)))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q_values = self.q_table[obs.to(torch.int64).reshape(-1)]
        return q_values.argmax(dim=1), q_values


class NormalizedObservationPolicy(nn.Module):
    """Another policy module behind ``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)``, with the running
    statistics frozen into the graph as constant buffers.

    The arithmetic is ``ObservationNormalizer``'s (rlrun/agents/running_stats.py) step for step: observations cast
    to float32 and flattened, normalised in float64 against the float64 statistics, then rounded to float32, so the
    policy sees bit for bit what ``act_greedy`` feeds it.
    """

    input_dtype = torch.float32
    # buffers, typed (see GaussianMeanPolicy)
    obs_mean: torch.Tensor
    obs_var: torch.Tensor
    obs_epsilon: torch.Tensor
    obs_clip: torch.Tensor

    def __init__(self, policy: nn.Module, mean: np.ndarray, var: np.ndarray, epsilon: float, clip: float):
        super().__init__()
        self.policy = policy
        self.output_names = policy.output_names
        # obs_ names: ONNX puts buffers and outputs in one namespace, and a Gaussian policy has an output "mean"
        self.register_buffer("obs_mean", torch.as_tensor(np.array(mean, dtype=np.float64)))
        self.register_buffer("obs_var", torch.as_tensor(np.array(var, dtype=np.float64)))
        self.register_buffer("obs_epsilon", torch.tensor(float(epsilon), dtype=torch.float64))
        self.register_buffer("obs_clip", torch.tensor(float(clip), dtype=torch.float64))
        self.observation_normalization = {
            "mean": self.obs_mean.tolist(),
            "var": self.obs_var.tolist(),
            "epsilon": float(epsilon),
            "clip": float(clip),
            "in_graph": True,
            "note": "the graph computes clip((obs - mean) / sqrt(var + epsilon), -clip, clip) in float64 on the "
            "flattened float32 observation, then rounds it to float32; feed it the env's raw observations",
        }

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        flat = obs.to(torch.float32).flatten(start_dim=1).to(torch.float64)
        scaled = (flat - self.obs_mean) / torch.sqrt(self.obs_var + self.obs_epsilon)
        clipped = torch.minimum(torch.maximum(scaled, -self.obs_clip), self.obs_clip)
        return self.policy(clipped.to(torch.float32))
