"""Replay buffers: storage and sampling of transitions. They know nothing of agents."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig

from rlrun.buffers.replay import Batch, ReplayBuffer

__all__ = ["Batch", "ReplayBuffer", "build_buffer"]


def build_buffer(cfg: DictConfig, obs_shape, obs_dtype, batch_size: int, device: torch.device, seed: int,
                 total_steps: int) -> ReplayBuffer:
    """The buffer named by the ``buffer`` group."""
    if cfg.name == "uniform":
        return ReplayBuffer(cfg.capacity, tuple(obs_shape), np.dtype(obs_dtype), batch_size, device, seed)
    raise ValueError(f"unknown buffer {cfg.name!r}")  # validate() rejects this earlier
