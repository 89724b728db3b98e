"""Replay buffers: storage and sampling of transitions. They know nothing of agents."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig

from rlrun.buffers.frames import FrameStackStore
from rlrun.buffers.n_step import NStepWindow
from rlrun.buffers.prioritized import PrioritizedReplayBuffer
from rlrun.buffers.replay import Batch, ReplayBuffer
from rlrun.buffers.sum_tree import SumTree
from rlrun.schedules import LinearSchedule

__all__ = [
    "Batch",
    "FrameStackStore",
    "NStepWindow",
    "PrioritizedReplayBuffer",
    "ReplayBuffer",
    "SumTree",
    "build_buffer",
]


def stores_frames(obs_shape: tuple[int, ...], obs_dtype: np.dtype) -> bool:
    """Stacks of uint8 frames ``(k, H, W)``, e.g. Atari's 4 x 84 x 84: consecutive ones share k - 1 frames."""
    return len(obs_shape) == 3 and obs_dtype == np.uint8


def build_buffer(
    cfg: DictConfig,
    obs_shape,
    obs_dtype,
    batch_size: int,
    device: torch.device,
    seed: int | np.random.SeedSequence,
    total_steps: int,
    gamma: float,
    num_envs: int,
) -> ReplayBuffer:
    """The buffer named by the ``buffer`` group, with n-step returns over ``cfg.n_step`` steps of each sub-env;
    stacked frames are stored one frame at a time."""
    shape, dtype = tuple(obs_shape), np.dtype(obs_dtype)
    observations = FrameStackStore(cfg.capacity, shape, dtype) if stores_frames(shape, dtype) else None
    # .get: configs saved before n-step returns existed lack the key
    n_step = {"gamma": gamma, "n_step": cfg.get("n_step", 1), "num_envs": num_envs}
    if cfg.name == "uniform":
        return ReplayBuffer(cfg.capacity, shape, dtype, batch_size, device, seed, observations=observations, **n_step)
    if cfg.name == "prioritized":
        # beta anneals to 1 over the whole run: a pure function of the step, so resume restores it
        beta = LinearSchedule(cfg.beta_start, 1.0, cfg.get("beta_steps") or total_steps)
        return PrioritizedReplayBuffer(
            cfg.capacity,
            shape,
            dtype,
            batch_size,
            device,
            seed,
            alpha=cfg.alpha,
            beta=beta,
            eps=cfg.eps,
            observations=observations,
            **n_step,
        )
    raise ValueError(f"unknown buffer {cfg.name!r}")  # validate() rejects this earlier
