"""Process-wide setup for a run: the torch device, thread count, global seeds and the run's random streams."""

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


# The consumers of randomness in a run, each with a stream of its own. The order is the spawn order: a new
# consumer goes at the end, so the existing streams keep their values for a given seed.
RANDOM_STREAMS = (
    "exploration",  # the agent's training actions (DQN's epsilon-greedy, REINFORCE's sampling, tabular Q, random)
    "replay",  # which transitions the replay buffer samples
    "evaluation",  # random draws of evaluation-time acting (the random agent's evaluation actions)
    "action_space",  # the training envs' action space (Gymnasium's own generator for .sample())
)


def random_streams(seed: int) -> dict[str, np.random.SeedSequence]:
    """One independent stream per consumer, all spawned from ``SeedSequence(seed)``.

    Spawned children are independent of each other and of the root, so exploration and replay sampling no
    longer draw the same numbers (both were ``default_rng(seed)``). Pass one to ``np.random.default_rng``, or
    to :func:`space_seed` for a Gymnasium space. Checkpoints hold each generator's state, so a resumed run
    continues the streams it had, whichever seeding made them.
    """
    return dict(zip(RANDOM_STREAMS, np.random.SeedSequence(seed).spawn(len(RANDOM_STREAMS))))


def space_seed(stream: np.random.SeedSequence) -> int:
    """An int seed for a Gymnasium space (``Space.seed`` takes ints only), drawn from the stream."""
    return int(stream.generate_state(1, np.uint64)[0])


def global_rng_state() -> dict:
    """Python, NumPy and torch global RNG states as plain values and tensors (checkpoint-safe)."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            **numpy_state,
            "state": {
                "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                "pos": int(numpy_state["state"]["pos"]),
            },
        },
        "torch": torch.get_rng_state(),
    }


def set_global_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {
        "key": state["numpy"]["state"]["key"].numpy().astype(np.uint32),
        "pos": state["numpy"]["state"]["pos"],
    }
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
