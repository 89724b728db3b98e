"""Neural networks. They know tensors and shapes, nothing of agents or buffers."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def mlp(in_features: int, hidden_sizes: Sequence[int]) -> nn.Sequential:
    """ReLU trunk; its output width is ``hidden_sizes[-1]``."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(in_features, width), nn.ReLU()]
        in_features = width
    return nn.Sequential(*layers)


class QNetwork(nn.Module):
    """Q-values for every discrete action from a flat observation, optionally with a dueling head.

    The dueling head (Wang et al. 2016) splits Q into a state value and action advantages,
    ``Q = V + A - mean(A)``; subtracting the mean makes V and A identifiable.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int], dueling: bool = False):
        super().__init__()
        self.trunk = mlp(obs_dim, hidden_sizes)
        width = hidden_sizes[-1]
        self.dueling = dueling
        if dueling:
            self.value = nn.Linear(width, 1)
            self.advantage = nn.Linear(width, n_actions)
        else:
            self.head = nn.Linear(width, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.trunk(obs.flatten(start_dim=1))
        if not self.dueling:
            return self.head(features)
        advantage = self.advantage(features)
        return self.value(features) + advantage - advantage.mean(dim=1, keepdim=True)


def mlp_with_head(in_features: int, hidden_sizes: Sequence[int], out_features: int) -> nn.Sequential:
    """ReLU trunk and a linear output layer: policy logits, a Gaussian mean or a state value."""
    return nn.Sequential(mlp(in_features, hidden_sizes), nn.Linear(hidden_sizes[-1], out_features))


class GaussianPolicyNetwork(nn.Module):
    """Mean of a diagonal Gaussian over Box actions; the log standard deviation is learned but state-free.

    A state-free spread is the usual choice for REINFORCE on continuous control: it is stable and lets
    exploration shrink as the policy becomes sure of itself.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], init_log_std: float = 0.0):
        super().__init__()
        self.mean = mlp_with_head(obs_dim, hidden_sizes, action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(init_log_std)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mean(obs.flatten(start_dim=1))
