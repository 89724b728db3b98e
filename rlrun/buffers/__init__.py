"""Replay buffers: storage and sampling of transitions. They know nothing of agents."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig

from rlrun.buffers.n_step import NStepWindow
from rlrun.buffers.prioritized import PrioritizedReplayBuffer
from rlrun.buffers.replay import Batch, ReplayBuffer
from rlrun.buffers.sum_tree import SumTree
from rlrun.schedules import LinearSchedule

__all__ = ["Batch", "NStepWindow", "PrioritizedReplayBuffer", "ReplayBuffer", "SumTree", "build_buffer"]


def build_buffer(cfg: DictConfig, obs_shape, obs_dtype, batch_size: int, device: torch.device, seed: int,
                 total_steps: int, gamma: float, num_envs: int) -> ReplayBuffer:
    """The buffer named by the ``buffer`` group, with n-step returns over ``cfg.n_step`` steps of each sub-env."""
    shape, dtype = tuple(obs_shape), np.dtype(obs_dtype)
    # .get: configs saved before n-step returns existed lack the key
    n_step = {"gamma": gamma, "n_step": cfg.get("n_step", 1), "num_envs": num_envs}
    if cfg.name == "uniform":
        return ReplayBuffer(cfg.capacity, shape, dtype, batch_size, device, seed, **n_step)
    if cfg.name == "prioritized":
        # beta anneals to 1 over the whole run: a pure function of the step, so resume restores it
        beta = LinearSchedule(cfg.beta_start, 1.0, total_steps)
        return PrioritizedReplayBuffer(cfg.capacity, shape, dtype, batch_size, device, seed, alpha=cfg.alpha,
                                       beta=beta, eps=cfg.eps, **n_step)
    raise ValueError(f"unknown buffer {cfg.name!r}")  # validate() rejects this earlier
