"""Optuna studies in a real PostgreSQL server: shared by two processes, pruning from SLURM jobs, a bad login."""

from __future__ import annotations

import json
import uuid

import optuna
import pytest
from sqlalchemy.engine import make_url

from tests.cluster.conftest import TINY, job_dirs, start_cli
from tests.conftest import run_cli
from tests.test_sweeps import read_summary

pytestmark = pytest.mark.cluster

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)


def finished(storage: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study_name, storage=storage).get_trials(states=FINISHED)


def optuna_on_slurm(partition: str, storage: str, study_name: str, n_trials: int) -> list[str]:
    """A study in ``storage`` whose trials are SLURM jobs, one at a time."""
    return [
        "-m",
        "hydra/sweeper=optuna",
        "hydra/launcher=submitit_slurm",
        f"hydra.launcher.partition={partition}",
        "hydra.launcher.mem_gb=2",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={study_name}",
        f"hydra.sweeper.n_trials={n_trials}",
        "hydra.sweeper.n_jobs=1",
    ]


def test_two_processes_share_a_study_in_postgresql_and_a_third_adds_nothing(tmp_path, postgres_url):
    # The password stays out of the command line, logs and Hydra's saved configs: libpq reads PGPASSWORD (or
    # ~/.pgpass). Trials run in the launching processes (as on two machines); the SLURM case is the next test.
    url = make_url(postgres_url)
    storage = url.set(password=None).render_as_string(hide_password=False)
    password = {"PGPASSWORD": url.password}
    study = f"shared-lr-{uuid.uuid4().hex[:8]}"  # the server outlives one test run under CLUSTER_HOLD=1
    # README's command, with this server and study
    command = [
        "-m",
        "hydra/sweeper=optuna",
        "hydra/launcher=basic",
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={study}",
        "hydra.sweeper.n_trials=4",
        "agent.lr=tag(log, interval(1e-4, 1e-2))",
        *TINY,
    ]
    first = start_cli(*command, f"hydra.sweep.dir={tmp_path / 'a'}", env=password)
    second = start_cli(*command, f"hydra.sweep.dir={tmp_path / 'b'}", env=password)
    for process in (first, second):
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr
        assert url.password not in stdout + stderr

    trials = finished(postgres_url, study)
    # each process asks for trials until the study holds 4 finished ones: the other's trial in flight can add one
    assert 4 <= len(trials) <= 5
    assert {trial.state for trial in trials} <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert len({trial.params["agent.lr"] for trial in trials}) == len(trials), "no trial was run twice"
    jobs = job_dirs(tmp_path / "a") + job_dirs(tmp_path / "b")
    assert len(jobs) == len(trials) and all((job / "results.json").is_file() for job in jobs)
    assert len(read_summary(tmp_path / "a")) + len(read_summary(tmp_path / "b")) == len(trials)

    third = start_cli(*command, f"hydra.sweep.dir={tmp_path / 'c'}", env=password)
    stdout, stderr = third.communicate(timeout=120)
    assert third.returncode == 0, stderr
    assert len(finished(postgres_url, study)) == len(trials), "a complete study runs no more trials"
    assert job_dirs(tmp_path / "c") == []
    assert f"{len(trials)} of 4 trials already finished" in stdout + stderr


def test_the_median_pruner_stops_a_slurm_trial_through_the_database(tmp_path, partition, postgres_url):
    """Trials as SLURM jobs, which reach the study over the network. Trial 0 (episodes up to 500 steps) completes;
    trial 1 (episodes cut at 10 steps, so returns of 10) reports its first evaluation from its SLURM job to
    PostgreSQL, is below trial 0's value there, and stops."""
    study = f"pruned-{uuid.uuid4().hex[:8]}"
    result = run_cli(
        *optuna_on_slurm(partition, postgres_url, study, 2),
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.seed=0",
        "hydra.sweeper.pruner_startup_trials=1",
        "agent=heuristic",
        "env.max_episode_steps=choice(10, 500)",
        "total_steps=400",
        "eval.every=200",
        "eval.episodes=3",
        "device=cpu",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    complete, pruned = sorted(finished(postgres_url, study), key=lambda trial: trial.number)
    assert complete.state == optuna.trial.TrialState.COMPLETE and complete.params["env.max_episode_steps"] == 500
    assert pruned.state == optuna.trial.TrialState.PRUNED and pruned.params["env.max_episode_steps"] == 10
    assert pruned.intermediate_values == {200: 10.0}, "stopped at its first evaluation"
    assert complete.intermediate_values[200] > 10.0

    first_job, pruned_job = job_dirs(tmp_path)
    assert json.loads((pruned_job / "results.json").read_text())["pruned_at_step"] == 200
    rows = {row["config"]: row for row in read_summary(tmp_path)}
    assert rows["env.max_episode_steps=10"]["pruned"] == "1"


def test_a_wrong_password_is_one_paragraph_before_any_trial(tmp_path, postgres_url):
    url = make_url(postgres_url)
    wrong = url.set(password="not-the-password").render_as_string(hide_password=False)
    result = run_cli(
        "-m",
        "hydra/sweeper=optuna",
        f"hydra.sweeper.storage={wrong}",
        "agent.lr=tag(log, interval(1e-4, 1e-2))",
        *TINY,
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "not-the-password" not in result.stdout + result.stderr
    message = result.stderr.strip()
    assert message.startswith("rlrun: error: hydra.sweeper.storage=postgresql://rlrun:***@127.0.0.1:")
    assert f"database '{url.database}'" in message and "refused the login of user 'rlrun'" in message
    assert "Check the user name and password" in message and "\n" not in message
    assert job_dirs(tmp_path) == []
