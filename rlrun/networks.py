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
