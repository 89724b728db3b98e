"""Shared helpers: compose configs exactly as the CLI does, and run the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from rlrun.cli import register_hydra_setup

register_hydra_setup()  # as the rlrun command does: schemas and sweep plugins (tests compose hydra/launcher=...)

# Short runs that still exercise learning, evaluation and both checkpoints.
TINY_RUN = [
    "total_steps=600",
    "agent.learning_starts=100",
    "agent.batch_size=32",
    "eval.every=300",
    "eval.episodes=2",
    "save_every=300",
    "log_every=50",
    "device=cpu",
]


def compose_cfg(*overrides: str) -> DictConfig:
    with initialize_config_module("rlrun.conf", version_base=None):
        return compose("config", overrides=list(overrides))


# The installed console script, as a user types it (not `python -m rlrun`).
RLRUN = str(Path(sys.executable).parent / "rlrun")


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([RLRUN, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


@pytest.fixture
def cli():
    return run_cli


def interrupt_at(trainer, step: int) -> None:
    """Make ``trainer.run()`` stop as a Ctrl-C would, once the env step ``step`` is done (checkpoint, then return)."""
    import signal

    update = trainer.agent.update

    def update_then_interrupt(current_step, episode):
        if current_step >= step:
            trainer.stop_signal = signal.SIGINT
        return update(current_step, episode)

    trainer.agent.update = update_then_interrupt


def poison_td_loss(monkeypatch: pytest.MonkeyPatch, when) -> None:
    """Make the DQN family's TD loss, and its gradient, NaN whenever ``when()`` is true (a diverging update)."""
    import rlrun.agents.dqn as dqn_module

    real = dqn_module.td_loss_and_gradient

    def poisoned(*args):
        losses, gradient = real(*args)
        factor = float("nan") if when() else 1.0
        return losses * factor, gradient * factor

    monkeypatch.setattr(dqn_module, "td_loss_and_gradient", poisoned)
