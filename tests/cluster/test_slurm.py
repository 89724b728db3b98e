"""Sweeps on a real one-node SLURM cluster (hydra/launcher=submitit_slurm): report, failures, scancel, time limits;
hydra/launcher=population_slurm: one SLURM job per population."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from rlrun.loop import resume_command
from tests.cluster.conftest import TINY, UNTIL_STOPPED, job_dirs, slurm_jobs, start_cli, wait_until
from tests.conftest import run_cli
from tests.test_sweeps import read_summary

pytestmark = pytest.mark.cluster


def on_slurm(partition: str) -> list[str]:
    """The README's SLURM command line, less the sweep itself."""
    return ["-m", "hydra/launcher=submitit_slurm", f"hydra.launcher.partition={partition}", "hydra.launcher.mem_gb=2"]


def test_a_2x2_sweep_runs_as_slurm_jobs_and_writes_the_report(tmp_path, partition):
    sweep = tmp_path / "sweep"
    result = run_cli(*on_slurm(partition), "agent=dqn,double_dqn", "seed=0,1", *TINY, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "Bypassing sacct error" not in output, "a cluster without accounting gives no sacct warnings"
    assert output.count("polling job states with squeue") == 1

    jobs = job_dirs(sweep)
    assert len(jobs) == 4 and all((job / "results.json").is_file() for job in jobs)
    rows = read_summary(sweep)
    assert sorted(row["config"] for row in rows) == ["agent=double_dqn", "agent=dqn"]
    assert all(row["runs"] == "2" and row["seeds"] == "0 1" and row["failed"] == "0" for row in rows)
    assert "| agent=dqn |" in result.stdout, "the report is printed"

    # four SLURM jobs (one array), named after the app and the sweep rather than "cli", all completing normally
    jobs_on_slurm = slurm_jobs(sweep)
    assert len(jobs_on_slurm) == 4, jobs_on_slurm
    assert {name for name, _ in jobs_on_slurm.values()} == {f"rlrun_{tmp_path.name}_sweep"}
    wait_until(lambda: {state for _, state in slurm_jobs(sweep).values()} == {"COMPLETED"}, "the jobs to end", 60)


def test_a_failing_job_is_reported_while_the_other_finishes(tmp_path, partition):
    sweep = tmp_path / "sweep"
    result = run_cli(*on_slurm(partition), "agent.lr=0.001,0", *TINY, f"hydra.sweep.dir={sweep}")
    assert result.returncode == 1, "a partly failed sweep exits non-zero, after the report"
    assert "Traceback" not in result.stderr, result.stderr
    good, bad = job_dirs(sweep)
    assert (good / "results.json").is_file()
    assert "agent.lr=0.0 is not allowed" in json.loads((bad / "failure.json").read_text())["error"]
    rows = {row["config"]: row for row in read_summary(sweep)}
    assert rows["agent.lr=0.001"]["runs"] == "1" and rows["agent.lr=0.001"]["failed"] == "0"
    assert rows["agent.lr=0"]["failed"] == "1" and "agent.lr=0.0 is not allowed" in rows["agent.lr=0"]["errors"]


def test_jobs_stopped_from_outside_by_scancel_sigkill_and_the_time_limit_signal(tmp_path, partition):
    """Three jobs of one sweep, each stopped from outside, on a 1-minute limit with SIGTERM 10 s before it:

    - job 0 is cancelled with scancel, which sends SIGTERM first: rlrun saves last.pt, the report says how to resume;
    - job 1 is SIGKILLed on its node (as the out-of-memory killer does): no result at all, the sweep still reports;
    - job 2 (on a 2-CPU node it starts when job 0 has left a CPU) runs until SLURM's SIGTERM before its time limit
      (slurmctld checks limits every 30 s and signals up to 30 s early: 20-50 s after its start), saves last.pt,
      and resume= goes on from there.
    """
    sweep = tmp_path / "sweep"
    sweeping = start_cli(
        *on_slurm(partition),
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=10",
        "seed=0,1,2",
        *UNTIL_STOPPED,
        f"hydra.sweep.dir={sweep}",
    )
    wait_until(
        lambda: all(list(sweep.glob(f"{number}_*/events.out.tfevents*")) for number in (0, 1)),
        "jobs 0 and 1 to start training",
    )
    time.sleep(1)  # the event file is written just before the training loop takes over SIGTERM
    cancelled, killed = job_dirs(sweep)[:2]  # job 2 may be running too, on a node with more CPUs
    (cancelled_id,) = [job_id for job_id in slurm_jobs(sweep) if job_id.endswith("_0")]  # array task 0: job 0
    subprocess.run(["scancel", cancelled_id], check=True)
    (events,) = killed.glob("events.out.tfevents*")  # events.out.tfevents.<time>.<host>.<pid>.<n>
    os.kill(int(events.name.split(".")[-2]), signal.SIGKILL)
    stdout, stderr = sweeping.communicate(timeout=240)
    assert sweeping.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    _, _, timed = job_dirs(sweep)

    for job in (cancelled, timed):
        failure = json.loads((job / "failure.json").read_text())
        assert failure["signal"] == "SIGTERM" and failure["step"] > 0
        assert (job / "checkpoints" / "last.pt").is_file() and not (job / "results.json").exists()
        assert resume_command(job) in failure["error"]
    assert json.loads((killed / "failure.json").read_text())["type"] == "killed from outside"
    (row,) = read_summary(sweep)
    assert row["runs"] == "0" and row["failed"] == "3"
    assert row["errors"].count("stopped from outside by SIGTERM") == 2 and "killed from outside" in row["errors"]

    wait_until(
        lambda: not {state for _, state in slurm_jobs(sweep).values()} & {"RUNNING", "COMPLETING"},
        "the jobs to end",
        60,
    )
    states = [state for _, (_, state) in sorted(slurm_jobs(sweep).items())]
    assert states == ["CANCELLED", "FAILED", "COMPLETED"], "job 2 ended before its time limit (not TIMEOUT)"

    stopped_at = json.loads((timed / "failure.json").read_text())["step"]
    resumed = run_cli(f'resume="{timed}"', f"total_steps={stopped_at + 300}")  # quoted: the folder has = and ,
    assert resumed.returncode == 0, resumed.stderr
    assert f"at env step {stopped_at}" in resumed.stdout + resumed.stderr
    assert json.loads((timed / "results.json").read_text())["steps"] == stopped_at + 300


def test_a_seed_sweep_trains_as_one_slurm_job_per_population(tmp_path, partition):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m",
        "hydra/launcher=population_slurm",
        f"hydra.launcher.partition={partition}",
        "hydra.launcher.mem_gb=2",
        "hydra.launcher.members=2",
        "seed=0,1,2",
        *TINY,
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "population of 2 jobs (#0, #1)" in output and "#2 seed=2" in output
    jobs = job_dirs(sweep)
    assert len(jobs) == 3 and all((job / "results.json").is_file() for job in jobs)
    assert "training a population of 2 members (seeds 0, 1)" in (jobs[0] / "rlrun.log").read_text()
    (row,) = read_summary(sweep)
    assert row["runs"] == "3" and row["seeds"] == "0 1 2" and row["failed"] == "0"
    jobs_on_slurm = slurm_jobs(sweep)
    assert len(jobs_on_slurm) == 2, jobs_on_slurm  # the population of two, and seed 2 alone
    wait_until(lambda: {state for _, state in slurm_jobs(sweep).values()} == {"COMPLETED"}, "the jobs to end", 60)


def test_a_population_s_slurm_job_killed_on_its_node_is_a_failure_record_for_each_member(tmp_path, partition):
    sweep = tmp_path / "sweep"
    sweeping = start_cli(
        "-m",
        "hydra/launcher=population_slurm",
        f"hydra.launcher.partition={partition}",
        "hydra.launcher.mem_gb=2",
        "seed=0,1",
        *UNTIL_STOPPED,
        f"hydra.sweep.dir={sweep}",
    )
    wait_until(lambda: len(list(sweep.glob("*/events.out.tfevents*"))) == 2, "both members to start training")
    (events, _) = sorted(sweep.glob("*/events.out.tfevents*"))  # events.out.tfevents.<time>.<host>.<pid>.<n>
    os.kill(int(events.name.split(".")[-2]), signal.SIGKILL)  # the population's one process, as the OOM killer would
    stdout, stderr = sweeping.communicate(timeout=240)
    assert sweeping.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    for job in job_dirs(sweep):
        assert json.loads((job / "failure.json").read_text())["type"] == "killed from outside", job.name
    (row,) = read_summary(sweep)
    assert row["runs"] == "0" and row["failed"] == "2"
