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


class NatureCNN(nn.Module):
    """The convolutional trunk of Nature DQN (Mnih et al. 2015): three conv layers and a 512-unit layer.

    Takes stacked frames ``(batch, C, H, W)`` of pixel values 0..255 in any dtype (uint8 from the replay
    buffer, so a batch crosses to the GPU at a quarter of float32's size) and scales them to [0, 1] itself.
    """

    width = 512

    def __init__(self, in_shape: Sequence[int]):
        super().__init__()
        channels, height, width = in_shape
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():  # the flattened size for this frame size (7 x 7 x 64 at 84 x 84)
            flat = self.convs(torch.zeros(1, channels, height, width)).shape[1]
        self.fc = nn.Sequential(nn.Linear(flat, self.width), nn.ReLU())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(frames.float() / 255.0))


def is_image_shape(obs_shape: Sequence[int]) -> bool:
    """Observations the CNN takes: ``(channels, height, width)``, e.g. 4 stacked 84 x 84 frames."""
    return len(obs_shape) == 3


class QNetwork(nn.Module):
    """Q-values for every discrete action, optionally with a dueling head.

    The trunk is an MLP over the flattened observation (``network="mlp"``) or the Nature-DQN CNN over
    stacked frames (``network="cnn"``). The dueling head (Wang et al. 2016) splits Q into a state value
    and action advantages, ``Q = V + A - mean(A)``; subtracting the mean makes V and A identifiable.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int], dueling: bool = False,
                 network: str = "mlp", obs_shape: Sequence[int] | None = None):
        super().__init__()
        if network == "cnn":
            self.trunk = NatureCNN(obs_shape)
            width = NatureCNN.width
        else:
            self.trunk = mlp(obs_dim, hidden_sizes)  # same parameter names as before the CNN existed
            width = hidden_sizes[-1]
        self.flatten = network != "cnn"
        self.dueling = dueling
        if dueling:
            self.value = nn.Linear(width, 1)
            self.advantage = nn.Linear(width, n_actions)
        else:
            self.head = nn.Linear(width, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.trunk(obs.flatten(start_dim=1) if self.flatten else obs)
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
