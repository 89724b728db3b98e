"""Process-wide setup for a run: the torch device, thread count and global seeds."""

from __future__ import annotations

import random

import numpy as np
import torch
from omegaconf import DictConfig

from rlrun.errors import ConfigError


def select_device(cfg: DictConfig) -> torch.device:
    """The device named by the ``device`` group; ``auto`` tries cuda, then mps, then cpu.

    Asking for a device this machine lacks is an error, not a silent fallback: a sweep planned for
    GPUs should not quietly run 50x slower.
    """
    torch.set_num_threads(cfg.threads)
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": hasattr(torch.backends, "mps") and torch.backends.mps.is_available(),
    }
    if cfg.type == "auto":
        return torch.device(next(name for name in ("cuda", "mps", "cpu") if available[name]))
    if not available.get(cfg.type, False):
        found = ", ".join(name for name, ok in available.items() if ok)
        raise ConfigError(
            f"device={cfg.type} was asked for, but torch finds no {cfg.type} device on this machine (available: "
            f"{found}). Use device=auto to take the best available device, or device=cpu."
        )
    return torch.device(cfg.type)


def seed_everything(seed: int) -> None:
    """Seed the global RNGs that libraries may use behind our back; our own code uses explicit generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def global_rng_state() -> dict:
    """Python, NumPy and torch global RNG states as plain values and tensors (checkpoint-safe)."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {**numpy_state, "state": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                                           "pos": int(numpy_state["state"]["pos"])}},
        "torch": torch.get_rng_state(),
    }


def set_global_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {"key": state["numpy"]["state"]["key"].numpy().astype(np.uint32),
                            "pos": state["numpy"]["state"]["pos"]}
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
