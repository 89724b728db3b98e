"""Replay buffers: storage and sampling of transitions. They know nothing of agents."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig

from rlrun.buffers.prioritized import PrioritizedReplayBuffer
from rlrun.buffers.replay import Batch, ReplayBuffer
from rlrun.buffers.sum_tree import SumTree
from rlrun.schedules import LinearSchedule

__all__ = ["Batch", "PrioritizedReplayBuffer", "ReplayBuffer", "SumTree", "build_buffer"]


def build_buffer(cfg: DictConfig, obs_shape, obs_dtype, batch_size: int, device: torch.device, seed: int,
                 total_steps: int) -> ReplayBuffer:
    """The buffer named by the ``buffer`` group."""
    shape, dtype = tuple(obs_shape), np.dtype(obs_dtype)
    if cfg.name == "uniform":
        return ReplayBuffer(cfg.capacity, shape, dtype, batch_size, device, seed)
    if cfg.name == "prioritized":
        # beta anneals to 1 over the whole run: a pure function of the step, so resume restores it
        beta = LinearSchedule(cfg.beta_start, 1.0, cfg.get("beta_steps") or total_steps)
        return PrioritizedReplayBuffer(cfg.capacity, shape, dtype, batch_size, device, seed, alpha=cfg.alpha,
                                       beta=beta, eps=cfg.eps)
    raise ValueError(f"unknown buffer {cfg.name!r}")  # validate() rejects this earlier
