"""hydra/launcher=population as a user runs it: the same folders, results and report as the joblib launcher;
members stop alone; Ctrl-C checkpoints every member and resume continues. hydra/launcher=population_local: one
submitit job per population (the SLURM path on one machine; on a real cluster: tests/cluster/test_slurm.py)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
from pathlib import Path

import torch

from rlrun.checkpoints import load_checkpoint
from rlrun.errors import TrainingDiverged
from rlrun.loop import Trainer
from rlrun.population import PopulationTrainer
from rlrun.sweeps.job import FAILURE_FILE
from tests.conftest import RLRUN, TINY_RUN, compose_cfg, run_cli
from tests.test_sweeps import SLOW_SWEEP, job_dirs, read_summary, slow_env_importable, wait_for_files

__all__ = ["slow_env_importable"]  # a fixture of test_sweeps, used here too

TINY_SWEEP = [
    "total_steps=400",
    "agent.learning_starts=50",
    "agent.batch_size=16",
    "eval.every=200",
    "eval.episodes=1",
    "save_every=200",
    "device=cpu",
    "hydra.launcher.n_jobs=1",
]


def outcomes(sweep: Path) -> dict[str, list]:
    return {job.name: json.loads((job / "results.json").read_text())["eval_history"] for job in job_dirs(sweep)}


def test_a_seed_sweep_gives_the_joblib_launchers_folders_results_and_report(tmp_path):
    """Each variant's seeds train as one population; every member's folder is an ordinary job's, and its results
    equal those of the same job under the joblib launcher."""
    sweep = ["-m", "agent=dqn,per_dqn", "seed=0,1,2", *TINY_SWEEP]
    population = run_cli(
        *sweep, "hydra/launcher=population", f"hydra.sweep.dir={tmp_path / 'population'}", cwd=tmp_path
    )
    assert population.returncode == 0, population.stdout[-3000:] + population.stderr[-3000:]
    said = population.stdout + population.stderr
    assert "population of 3 jobs (#0, #1, #2)" in said and "population of 3 jobs (#3, #4, #5)" in said
    solo = run_cli(*sweep, f"hydra.sweep.dir={tmp_path / 'joblib'}", cwd=tmp_path)
    assert solo.returncode == 0, solo.stderr[-3000:]

    members = job_dirs(tmp_path / "population")
    assert [job.name for job in members] == [job.name for job in job_dirs(tmp_path / "joblib")]
    for job in members:
        for part in (
            ".hydra/config.yaml",
            ".hydra/overrides.yaml",
            "rlrun.log",
            "results.json",
            "checkpoints/best.pt",
            "checkpoints/last.pt",
        ):
            assert (job / part).is_file(), f"{job.name} has no {part}"
        assert list(job.glob("events.out.tfevents*")), job.name
    for job in members[:3]:  # each member's rlrun.log holds its own evaluations only
        assert (job / "rlrun.log").read_text().count(": greedy eval") == 2, job.name
    assert outcomes(tmp_path / "population") == outcomes(tmp_path / "joblib"), "a member trains as its solo run"
    rows = {row["config"]: row for row in read_summary(tmp_path / "population")}
    assert set(rows) == {"agent=dqn", "agent=per_dqn"} and all(row["runs"] == "3" for row in rows.values())

    best = members[1] / "checkpoints" / "best.pt"
    evaluated = run_cli("mode=evaluate", f'checkpoint="{best}"', "eval.episodes=1", "device=cpu", cwd=tmp_path)
    assert evaluated.returncode == 0 and "greedy episodes: return" in evaluated.stdout, evaluated.stderr[-2000:]


def test_members_come_in_populations_of_at_most_hydra_launcher_members_and_other_families_run_alone(tmp_path):
    result = run_cli(
        "-m",
        "seed=range(3)",
        *TINY_SWEEP,
        "total_steps=100",
        "eval.every=100",
        "hydra/launcher=population",
        "hydra.launcher.members=2",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert "population of 2 jobs (#0, #1)" in said
    assert "#2 seed=2" in said and "population of 1" not in said
    assert len(job_dirs(tmp_path)) == 3
    others = run_cli(
        "-m",
        "agent=random",
        "seed=0,1",
        "total_steps=100",
        "eval.episodes=1",
        "device=cpu",
        "hydra/launcher=population",
        f"hydra.sweep.dir={tmp_path / 'random'}",
        cwd=tmp_path,
    )
    assert others.returncode == 0, others.stderr[-3000:]
    assert (others.stdout + others.stderr).count(
        "runs as an ordinary job: agent=random (the random family) has no member axis"
    ) == 2
    refused = run_cli(
        "-m",
        "seed=0,1",
        *TINY_SWEEP,
        "hydra/launcher=population",
        "hydra.launcher.members=0",
        f"hydra.sweep.dir={tmp_path / 'refused'}",
        cwd=tmp_path,
    )
    assert refused.returncode != 0 and "hydra.launcher.members=0 is not a population size" in refused.stderr


# submitit launchers have no n_jobs: the executor runs every submitted job at once
SUBMITIT_TINY_SWEEP = [item for item in TINY_SWEEP if not item.startswith("hydra.launcher.n_jobs")]


def test_population_local_trains_each_population_as_one_submitit_job(tmp_path):
    """The grouping and the worker are the population launcher's (whose results equal the joblib launcher's,
    above); here each population goes through submitit as one job. A population's job killed outright, on SLURM:
    tests/cluster/test_slurm.py."""
    result = run_cli(
        "-m",
        "seed=0,1,2",
        *SUBMITIT_TINY_SWEEP,
        "hydra/launcher=population_local",
        "hydra.launcher.members=2",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert "population of 2 jobs (#0, #1)" in said and "#2 seed=2" in said
    submitted = [path for path in (tmp_path / ".submitit").iterdir() if path.name != "%j"]
    assert len(submitted) == 2, "one submitit job per population (and the job left alone)"
    jobs = job_dirs(tmp_path)
    assert [job.name for job in jobs] == ["0_seed=0", "1_seed=1", "2_seed=2"]
    assert all((job / "results.json").is_file() and (job / "checkpoints" / "last.pt").is_file() for job in jobs)
    assert "training a population of 2 members (seeds 0, 1)" in (jobs[1] / "rlrun.log").read_text()
    (row,) = read_summary(tmp_path)
    assert row["runs"] == "3" and row["failed"] == "0"


def members(tmp_path: Path, *overrides: str) -> list[Trainer]:
    return [Trainer(compose_cfg(f"seed={seed}", *TINY_RUN, *overrides), tmp_path / str(seed)) for seed in range(3)]


def test_a_diverging_member_stops_alone_with_its_last_good_checkpoint(tmp_path):
    trainers = members(tmp_path, "total_steps=900", "save_every=200")
    population = PopulationTrainer(trainers)
    update = population.population.update

    def update_then_poison(step):  # member 1's weights go non-finite after env step 450
        if step > 450:
            with torch.no_grad():
                population.population.online.stacked_parameter("head.bias")[1].fill_(math.nan)
        return update(step)

    population.population.update = update_then_poison
    outcomes = population.run()
    assert isinstance(outcomes[1], TrainingDiverged) and "diverged at env step 5" in str(outcomes[1])
    assert load_checkpoint(tmp_path / "1" / "checkpoints" / "last.pt")["progress"]["step"] == 400
    for k in (0, 2):
        assert outcomes[k]["steps"] == 900, "the others went on"
        assert all(torch.isfinite(p).all() for p in trainers[k].agent.online.parameters())


def test_the_same_population_twice_gives_the_same_results(tmp_path):
    first = PopulationTrainer(members(tmp_path / "a")).run()
    second = PopulationTrainer(members(tmp_path / "b")).run()
    assert [run["eval_history"] for run in first] == [run["eval_history"] for run in second]
    for seed in range(3):
        a = load_checkpoint(tmp_path / "a" / str(seed) / "checkpoints" / "last.pt")["agent"]["online"]
        b = load_checkpoint(tmp_path / "b" / str(seed) / "checkpoints" / "last.pt")["agent"]["online"]
        assert all(torch.equal(a[name], b[name]) for name in a)


def test_ctrl_c_checkpoints_every_member_and_resume_continues_the_sweep_and_a_member_alone(
    tmp_path, slow_env_importable
):
    sweep = tmp_path / "sweep"
    log_file = tmp_path / "sweep.log"  # as a terminal starts it: a process group of its own
    process = subprocess.Popen(
        [RLRUN, "-m", *SLOW_SWEEP, "hydra/launcher=population", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
        stdout=log_file.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_files(sweep, "*/checkpoints/last.pt", 4, process)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=300) == 130, log_file.read_text()[-3000:]
    assert "Traceback" not in log_file.read_text()
    jobs = job_dirs(sweep)
    steps = set()
    for job in jobs:
        failure = json.loads((job / FAILURE_FILE).read_text())
        assert failure["type"] == "interrupted" and failure["signal"] == "SIGINT", job.name
        steps.add(load_checkpoint(job / "checkpoints" / "last.pt")["progress"]["step"])
    assert len(jobs) == 4 and len(steps) == 1 and 0 < steps.pop() < 1200, "every member stopped at one step"

    alone = run_cli(f'resume="{jobs[0]}"', cwd=tmp_path)  # one member's folder resumes as a single run
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert json.loads((jobs[0] / "results.json").read_text())["steps"] == 1200
    continued = run_cli(f"resume={sweep}", cwd=tmp_path)
    assert continued.returncode == 0, continued.stdout[-3000:] + continued.stderr[-3000:]
    for job in jobs[1:]:
        assert json.loads((job / "results.json").read_text())["steps"] == 1200, job.name
        assert f"resuming {job} at env step" in (job / "rlrun.log").read_text()
    (row,) = read_summary(sweep)
    assert row["runs"] == "4" and row["failed"] == "0"


def test_jobs_that_differ_only_in_seed_gamma_tau_or_learning_rate_share_a_population_key():
    from rlrun.sweeps.population_jobs import population_key

    grid = [
        ["agent=dqn", f"agent.gamma={gamma}", f"agent.tau={tau}", f"agent.lr={lr}", "agent.lr_end=1e-5", f"seed={seed}"]
        for gamma in ("0.98", "0.99")
        for tau in ("0.005", "0.01")
        for lr in ("3e-4", "1e-3")
        for seed in (0, 1)
    ]
    assert {population_key(job) for job in grid} == {("agent=dqn",)}, "one population for the whole grid"
    assert population_key(["agent=dqn", "agent.batch_size=32", "seed=0"]) != population_key(["agent=dqn", "seed=0"])
