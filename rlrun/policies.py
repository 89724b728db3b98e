"""Greedy policies as self-contained torch modules: a batch of observations in, actions and their scores out.

Each agent family builds one from its own networks (``greedy_policy()``), and ``mode=export`` (rlrun/export.py)
traces it to TorchScript and ONNX. A policy calls its network's own ``forward``, so whatever the network does at
inference (the CNN's pixel scaling, the dueling combination) is in the exported graph without being written twice.

Every policy module has:

- ``input_dtype``: the torch dtype of the observations the exported graph takes;
- ``output_names``: its outputs in order, the first always ``action`` (what ``env.step`` takes, row by row);
- ``observation_normalization``: ``None``, or the statistics the module applies to observations itself (for the
  JSON sidecar; no family of rlrun normalises observations yet).
"""

from __future__ import annotations

from typing import Sequence

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

    def __init__(self, network: nn.Module, action_low: np.ndarray, action_high: np.ndarray):
        """``network`` maps observations to flat means and has a state-free ``log_std`` parameter."""
        super().__init__()
        self.network = network
        self.action_shape: Sequence[int] = tuple(action_low.shape)
        self.register_buffer("action_low", torch.as_tensor(action_low, dtype=torch.float32))
        self.register_buffer("action_high", torch.as_tensor(action_high, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean = self.network(obs.to(torch.float32)).reshape(-1, *self.action_shape)
        std = self.network.log_std.exp().reshape(self.action_shape).expand_as(mean)
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

    def __init__(self, q_table: np.ndarray):
        super().__init__()
        self.register_buffer("q_table", torch.as_tensor(np.array(q_table)))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q_values = self.q_table[obs.to(torch.int64).reshape(-1)]
        return q_values.argmax(dim=1), q_values
