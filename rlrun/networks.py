"""Neural networks. They know tensors and shapes, nothing of agents or buffers."""

from __future__ import annotations

from typing import Sequence

import numpy as np
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


class NumpyGreedyPolicy:
    """``argmax_a Q(obs, a)`` of a CPU :class:`QNetwork` in plain NumPy, for acting one step at a time.

    For one observation through a small MLP, ``nn.Module.__call__`` and the per-op dispatch cost several
    times the arithmetic. The weights are NumPy *views* of the module's parameters (shared memory), so
    optimizer steps and ``load_state_dict`` (both in place) are seen at once and nothing is refreshed.
    The dueling head needs only the advantages: ``V + A - mean(A)`` has the same argmax as ``A``.
    """

    def __init__(self, network: QNetwork):
        linears = [layer for layer in network.trunk if isinstance(layer, nn.Linear)]
        linears.append(network.advantage if network.dueling else network.head)
        if any(layer.weight.device.type != "cpu" for layer in linears):
            raise ValueError("NumpyGreedyPolicy needs a network on the CPU; use the module on other devices")
        # (in, out) views of the (out, in) weights: x @ W.T without a copy
        self.layers = [(layer.weight.detach().numpy().T, layer.bias.detach().numpy()) for layer in linears]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = obs.reshape(len(obs), -1)
        *hidden, (head_weight, head_bias) = self.layers
        for weight, bias in hidden:
            x = x @ weight
            x += bias
            np.maximum(x, 0.0, out=x)
        return (x @ head_weight + head_bias).argmax(axis=1)


def use_numpy_greedy(device: torch.device, hidden_sizes: Sequence[int]) -> bool:
    """Whether :class:`NumpyGreedyPolicy` pays: on the CPU, for layers up to 512 wide (above that the
    matrix products dominate and torch's kernels are as fast; README, Performance)."""
    return device.type == "cpu" and max(hidden_sizes) <= 512
