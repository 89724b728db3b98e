"""Optuna trials of several seeds (hydra.sweeper.seeds_per_trial): seeds per trial, the aggregate objective, pruning
on the aggregate, optuna_results.yaml, and a study continued by a second process from shared storage."""

from __future__ import annotations

import json

import optuna
import pytest
from omegaconf import OmegaConf

from rlrun.sweeps.optuna_study import TrialReporter, aggregate, objective, open_storage, trial_seeds
from tests.conftest import run_cli
from tests.test_sweeps import TINY_SWEEP, job_dirs


def test_trials_never_share_seeds_and_the_aggregates_are_hand_computable():
    seeds = [trial_seeds(trial, 3) for trial in range(4)]
    assert seeds[0] == [0, 1, 2] and seeds[3] == [9, 10, 11]
    assert len({seed for trial in seeds for seed in trial}) == 12
    assert trial_seeds(1, 2, base=100) == [102, 103], "a fixed seed=S shifts them all"
    values = [5.0, -100, 3, 500, 1, 7, 2, 6]
    assert aggregate(values, "iqm") == pytest.approx(4.0) and aggregate(values, "min") == -100
    assert aggregate(values, "mean") == pytest.approx(53.0)


@pytest.mark.parametrize("how", ["mean", "iqm", "min"])
def test_the_pruner_compares_the_aggregate_of_a_trial_s_runs(tmp_path, how):
    storage = open_storage(str(tmp_path / "optuna.journal"))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner, study_name="s")
    for value in (100.0, 120.0):
        trial = study.ask()
        trial.report(value, 1000)
        study.tell(trial, value)
    number = study.ask().number
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("s"), number)
    first, second = (TrialReporter(study, storage, trial_id, pruner, run=run, how=how) for run in (0, 1))
    assert first(1000, 200.0) is False, "alone, the first run's 200 is above the median (110)"
    assert study.trials[-1].intermediate_values == {1000: 200.0}
    # the second run's 0 brings the trial to mean 100 (IQM of two: the mean) or min 0, both below 110
    assert second(1000, 0.0) is True and second.pruned_at_step == 1000
    assert study.trials[-1].intermediate_values == {1000: aggregate([200.0, 0.0], how)}


def test_a_trial_of_two_seeds_is_judged_by_their_aggregate_and_a_second_process_continues_the_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = [
        "-m",
        "hydra/sweeper=optuna",
        "hydra/launcher=basic",
        "hydra.sweeper.seeds_per_trial=2",
        "hydra.sweeper.aggregate=min",
        "hydra.sweeper.n_jobs=2",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=two",
        "agent.lr=tag(log, interval(1e-4, 1e-2))",
        *TINY_SWEEP,
    ]
    first = run_cli(*args, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path / 'first'}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = job_dirs(tmp_path / "first")
    assert len(jobs) == 4 and [job.name.rsplit("seed=", 1)[1] for job in jobs] == ["0", "1", "2", "3"]
    saved = OmegaConf.to_container(OmegaConf.load(tmp_path / "first" / "optuna_results.yaml"))
    assert saved["seeds_per_trial"] == 2 and saved["aggregate"] == "min"
    for entry in saved["per_trial"]:
        assert entry["seeds"] == trial_seeds(entry["trial"], 2)
        runs = [
            json.loads((job / "results.json").read_text())
            for job in jobs
            if int(OmegaConf.load(job / ".hydra" / "config.yaml").seed) in entry["seeds"]
        ]
        assert entry["values"] == pytest.approx([objective(run, "last_evals_mean", 3) for run in runs])
        assert entry["value"] == pytest.approx(min(entry["values"])), "the objective is the aggregate (min)"
        rates = [
            OmegaConf.load(job / ".hydra" / "config.yaml").agent.lr
            for job in jobs
            if int(OmegaConf.load(job / ".hydra" / "config.yaml").seed) in entry["seeds"]
        ]
        assert rates == pytest.approx([entry["params"]["agent.lr"]] * 2), "a trial's runs share its params"
    study = optuna.load_study(study_name="two", storage=storage)
    for trial in study.trials:  # the pruner's history: the aggregate at every eval step
        assert sorted(trial.intermediate_values) == [150, 300]

    second = run_cli(*args, "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={tmp_path / 'second'}", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = job_dirs(tmp_path / "second")
    assert [job.name.rsplit("seed=", 1)[1] for job in resumed] == ["4", "5"], "trial 2's own seeds, none reused"
    saved = OmegaConf.to_container(OmegaConf.load(tmp_path / "second" / "optuna_results.yaml"))
    assert saved["trials"]["complete"] == 3 and [entry["trial"] for entry in saved["per_trial"]] == [0, 1, 2]


@pytest.mark.parametrize(
    "bad,message",
    [
        (["hydra.sweeper.seeds_per_trial=2", "seed=range(0,3)"], "seed cannot also be a search dimension"),
        (["hydra.sweeper.aggregate=median"], "hydra.sweeper.aggregate='median' is not allowed"),
        (["hydra.sweeper.seeds_per_trial=0"], "hydra.sweeper.seeds_per_trial=0 is not allowed"),
    ],
)
def test_bad_seed_settings_are_one_paragraph_before_any_trial(tmp_path, bad, message):
    result = run_cli(
        "-m",
        "hydra/sweeper=optuna",
        "agent.lr=interval(1e-4, 1e-2)",
        *bad,
        *TINY_SWEEP,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not list(tmp_path.glob("sweep/*/results.json"))
