"""The servers `make test-cluster` starts (tests/cluster/run.sh), as fixtures, and helpers for sweeps on them.

These tests run only under `pytest -m cluster` with the environment run.sh sets: SLURM_CONF (the throwaway
cluster), RLRUN_TEST_SLURM_PARTITION and RLRUN_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

# Tiny budgets: each job is a few seconds, mostly Python and torch starting up on the node.
TINY = [
    "total_steps=600",
    "agent.learning_starts=100",
    "agent.batch_size=32",
    "eval.every=300",
    "eval.episodes=2",
    "device=cpu",
]
# A job that trains until something stops it: no eval or checkpoint on the way, so last.pt can only come from a stop.
UNTIL_STOPPED = ["total_steps=10000000", "eval.every=10000000", "save_every=10000000", "device=cpu"]


def required(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        pytest.fail(
            f"{variable} is not set: the cluster tests need the SLURM cluster and PostgreSQL server that "
            f"`make test-cluster` (tests/cluster/run.sh) starts"
        )
    return value


@pytest.fixture(scope="session")
def partition() -> str:
    required("SLURM_CONF")
    return required("RLRUN_TEST_SLURM_PARTITION")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """postgresql://user:password@127.0.0.1:port/database of the throwaway server."""
    return required("RLRUN_TEST_POSTGRES_URL")


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """rlrun in the background, as a user would start it (stdout and stderr collected as text)."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    environment.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "rlrun", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(
        (p.parent.parent for p in Path(sweep_dir).glob("*/.hydra/overrides.yaml")),
        key=lambda p: int(p.name.split("_", 1)[0]),
    )


def slurm_jobs(sweep_dir: Path) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (name, state) of the sweep's jobs (submitit keeps a folder per job id in .submitit/)."""
    ids = sorted(path.name for path in (Path(sweep_dir) / ".submitit").iterdir() if path.is_dir())
    listing = subprocess.run(
        ["squeue", "--noheader", "--array", "--states=all", "--jobs", ",".join(ids), "--format=%i|%j|%T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = {}
    for line in listing.splitlines():
        job_id, name, state = line.split("|")
        jobs[job_id] = (name, state)
    return jobs
