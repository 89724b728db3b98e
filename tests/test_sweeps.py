"""Sweeps as a user runs them: parallel multiruns, the sweep report, failures, Optuna studies, submitit."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from rlrun.checkpoints import load_checkpoint
from rlrun.errors import ConfigError
from rlrun.loop import resume_command
from rlrun.sweeps.job import FAILURE_FILE, run_sweep_job
from rlrun.sweeps.optuna_study import TrialReporter, masked, objective, open_storage, parse_search_space
from rlrun.sweeps.plugins import job_folder, slurm_job_name
from rlrun.sweeps.resume import CONTINUE_VARIABLE, FINISHED, FROM_CHECKPOINT, START_AGAIN, continue_job, sweep_command
from rlrun.sweeps.submitit_jobs import JobStateWatcher
from tests.conftest import RLRUN, run_cli

# Tiny budgets: a job is ~0.5 s of training, the rest is process start-up.
TINY_SWEEP = [
    "total_steps=300",
    "agent.learning_starts=50",
    "agent.batch_size=16",
    "eval.every=150",
    "eval.episodes=1",
    "device=cpu",
]


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")), key=lambda p: p.name)


def read_summary(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


# ----------------------------------------------------------------------------- grid sweeps
def test_2x2_multirun_runs_in_parallel_and_reports_one_row_per_config(tmp_path):
    result = run_cli("-m", "agent=dqn,double_dqn", "seed=0,1", *TINY_SWEEP, f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "(hydra/launcher=joblib)" in result.stdout + result.stderr  # the default launcher is joblib

    jobs = job_dirs(tmp_path)
    assert [job.name for job in jobs] == [
        "0_agent=dqn,seed=0",
        "1_agent=dqn,seed=1",
        "2_agent=double_dqn,seed=0",
        "3_agent=double_dqn,seed=1",
    ], "folders (run names) say what varies"
    for job in jobs:
        assert list(job.glob("events.out.tfevents*")), f"no TensorBoard events in {job}"

    rows = read_summary(tmp_path)
    assert [row["config"] for row in rows] != [] and len(rows) == 2
    for row in rows:
        agent = row["config"].split("=")[1]
        runs = [
            json.loads((job / "results.json").read_text())
            for job in jobs
            if f"- agent={agent}\n" in (job / ".hydra" / "overrides.yaml").read_text()
        ]
        assert len(runs) == 2 and row["runs"] == "2" and row["seeds"] == "0 1" and row["failed"] == "0"
        best = [r["best_eval_return"] for r in runs]
        final = [r["final_eval_return"] for r in runs]
        assert float(row["best_return_mean"]) == pytest.approx(statistics.fmean(best))
        assert float(row["best_return_std"]) == pytest.approx(statistics.stdev(best))
        assert float(row["best_return_min"]) == min(best) and float(row["best_return_max"]) == max(best)
        assert float(row["final_return_mean"]) == pytest.approx(statistics.fmean(final))
        assert float(row["wall_seconds_mean"]) == pytest.approx(statistics.fmean(r["wall_seconds"] for r in runs))
    assert float(rows[0]["best_return_mean"]) >= float(rows[1]["best_return_mean"]), "sorted best first"
    table = [line for line in (tmp_path / "summary.md").read_text().splitlines() if line.startswith("| agent=")]
    assert len(table) == 3 and "| agent=" in table[2][2:], "a row per config, then the pair's P(X > Y)"
    assert "| agent=" in result.stdout, "the table is printed"


def test_a_failing_job_does_not_stop_the_sweep_and_is_reported(tmp_path):
    result = run_cli("-m", "hydra/launcher=basic", "agent.lr=0.001,0", *TINY_SWEEP, f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 1, "a partly failed sweep exits non-zero, after the report"
    assert "Traceback" not in result.stderr, result.stderr
    good, bad = job_dirs(tmp_path)
    assert (good.name, bad.name) == ("0_agent.lr=0.001", "1_agent.lr=0"), "a single-key sweep names that key"
    assert (good / "results.json").is_file()
    assert "agent.lr=0.0 is not allowed" in json.loads((bad / FAILURE_FILE).read_text())["error"]

    rows = {row["config"]: row for row in read_summary(tmp_path)}
    assert rows["agent.lr=0.001"]["failed"] == "0" and rows["agent.lr=0.001"]["runs"] == "1"
    assert rows["agent.lr=0"]["failed"] == "1" and "agent.lr=0.0 is not allowed" in rows["agent.lr=0"]["errors"]
    assert "Failed jobs (1)" in result.stdout


@pytest.mark.parametrize("error", [ConfigError("agent.lr=0 is not allowed"), RuntimeError("boom"), SystemExit(2)])
def test_a_sweep_job_records_any_failure_instead_of_raising(tmp_path, error):
    def failing(_listener):
        raise error

    outcome = run_sweep_job(failing, tmp_path)
    assert outcome["failed"] is True and outcome["type"] == type(error).__name__
    record = json.loads((tmp_path / FAILURE_FILE).read_text())
    assert record["error"] == outcome["error"]
    assert ("traceback" in record) == (not isinstance(error, ConfigError)), "bugs keep their traceback"


def test_job_folders_are_readable_and_bounded():
    assert job_folder(3, "agent=dqn,seed=1") == "3_agent=dqn,seed=1"
    assert job_folder(0, "") == "0"
    assert job_folder(1, "checkpoint=/a/b.pt") == "1_checkpoint=_a_b.pt"
    long = job_folder(12, ",".join(f"key{i}=value{i}" for i in range(40)))
    assert len(long) <= 120 and long.endswith(",...") and "key0=value0" in long


# ----------------------------------------------------------------------------- Optuna
@pytest.fixture
def parser():
    return OverridesParser.create()


def test_search_space_syntax_matches_hydras_optuna_sweeper(parser):
    space, fixed = parse_search_space(
        {"agent.gamma": "interval(0.9, 0.999)", "agent.batch_size": "choice(16, 32)"},
        [
            "agent.lr=tag(log, interval(1e-4, 1e-2))",
            "agent.train_freq=range(1, 5)",
            "agent.target_update_every=int(interval(100, 1000))",
            "agent.batch_size=choice(32,64,128)",
            "seed=3",
            "agent=dqn,double_dqn",
        ],
        parser,
    )
    D = optuna.distributions
    assert space["agent.lr"] == D.FloatDistribution(1e-4, 1e-2, log=True)
    assert space["agent.gamma"] == D.FloatDistribution(0.9, 0.999)
    assert space["agent.train_freq"] == D.IntDistribution(1, 4), "range excludes stop, as Python's does"
    assert space["agent.target_update_every"] == D.IntDistribution(100, 1000)
    assert space["agent.batch_size"] == D.CategoricalDistribution([32, 64, 128]), "the command line wins"
    assert space["agent"] == D.CategoricalDistribution(["dqn", "double_dqn"])
    assert fixed == ["seed=3"]


def test_objective_is_the_mean_of_the_last_evaluations():
    results = {
        "eval_history": [[100, 10.0], [200, 50.0], [300, 20.0], [400, 30.0]],
        "best_eval_return": 50.0,
        "final_eval_return": 30.0,
    }
    assert objective(results, "last_evals_mean", 3) == pytest.approx(100.0 / 3)
    assert objective(results, "best_eval_return", 3) == 50.0


def test_median_pruner_stops_a_trial_below_the_median():
    storage = optuna.storages.InMemoryStorage()
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner)
    for value in (100.0, 120.0):
        trial = study.ask()
        trial.report(value, 1000)
        study.tell(trial, value)

    def reporter_for(number: int) -> TrialReporter:  # as a job does: from the trial number the sweeper passed
        study_id = storage.get_study_id_from_name(study.study_name)
        return TrialReporter(study, storage, storage.get_trial_id_from_study_id_trial_number(study_id, number), pruner)

    good, bad = reporter_for(study.ask().number), reporter_for(study.ask().number)
    assert good(1000, 150.0) is False and good.pruned_at_step is None
    assert bad(1000, 5.0) is True and bad.pruned_at_step == 1000
    assert study.trials[-1].intermediate_values == {1000: 5.0}  # reported into the study's storage


def test_evaluate_mode_jobs_are_reported_as_finished(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("-m", "mode=evaluate", "agent=random,heuristic", "eval.episodes=3", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["config"]: row for row in csv.DictReader((sweep / "summary.csv").open())}
    assert set(rows) == {"agent=random", "agent=heuristic"}
    for row in rows.values():
        assert row["failed"] == "0" and row["runs"] == "1"
    heuristic_eval = json.loads(next(sweep.glob("*agent=heuristic*/eval.json")).read_text())
    assert float(rows["agent=heuristic"]["best_return_mean"]) == pytest.approx(heuristic_eval["mean"])
    assert float(rows["agent=heuristic"]["best_return_mean"]) > float(rows["agent=random"]["best_return_mean"])


def completed_trials(storage: str, study_name: str) -> int:
    import sqlalchemy.exc

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # the study is not created yet
        return 0
    except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
        # this poll raced the sweep process creating the fresh database's schema (or holding its lock): not yet
        return 0
    return len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))


def test_optuna_study_with_sqlite_is_stopped_then_resumed_to_finish(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = [
        "-m",
        "hydra/sweeper=optuna",
        "hydra/launcher=basic",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=tiny",
        "hydra.sweeper.pruner=none",
        "agent.lr=tag(log, interval(1e-4, 1e-2))",
        "agent.batch_size=choice(16,32)",
        *TINY_SWEEP[:2],
        *TINY_SWEEP[3:],
    ]
    first = subprocess.Popen(
        [sys.executable, "-m", "rlrun", *args, f"hydra.sweep.dir={tmp_path / 'first'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while completed_trials(storage, "tiny") < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.3)
    os.killpg(first.pid, signal.SIGKILL)  # stopped hard, as a preempted job would be
    first.wait()
    done_before = completed_trials(storage, "tiny")
    assert 2 <= done_before < 4, "the first process was stopped mid-study"

    second = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'second'}")
    assert second.returncode == 0, second.stderr
    assert completed_trials(storage, "tiny") == 4
    assert len(job_dirs(tmp_path / "second")) == 4 - done_before, "the resumed study runs only the missing trials"
    for job in job_dirs(tmp_path / "second"):  # trials are named by the search space, the plain overrides left out
        assert re.fullmatch(r"\d+_agent\.batch_size=(16|32),agent\.lr=[0-9.e-]+", job.name), job.name
    assert "best_params" in (tmp_path / "second" / "optuna_results.yaml").read_text()
    assert len(read_summary(tmp_path / "second")) == 4 - done_before


# ----------------------------------------------------------------------------- Optuna storages that cannot be opened
def test_a_storage_without_its_driver_is_one_paragraph_before_any_trial(tmp_path):
    result = run_cli(
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.storage=postgresql+pg8000://me:secret@db:5432/lab",
        "agent.lr=tag(log, interval(1e-4, 1e-2))",
        *TINY_SWEEP,
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 2
    message = result.stderr.strip()
    assert "Traceback" not in message and "\n" not in message and "secret" not in result.stdout + message
    assert message.startswith("rlrun: error: hydra.sweeper.storage=postgresql+pg8000://me:***@db:5432/lab")
    assert "database 'lab' on db:5432" in message and "no module named 'pg8000'" in message
    assert "pip install pg8000" in message and 'pip install "rlrun[postgres]"' in message
    assert job_dirs(tmp_path) == [], "no trial started"


def test_a_storage_where_nothing_listens_names_the_address_to_check():
    with socket.socket() as probe:  # a loopback port that was free a moment ago, so nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConfigError) as raised:
        open_storage(f"postgresql://me:secret@127.0.0.1:{port}/lab")
    message = str(raised.value)
    assert f"postgresql://me:***@127.0.0.1:{port}/lab" in message and "secret" not in message
    assert f"nothing answers at 127.0.0.1:{port}" in message and "Connection refused" in message
    assert f"pg_isready -h 127.0.0.1 -p {port}" in message


def test_storage_urls_are_masked_in_logs_and_results():
    assert masked("postgresql://me:secret@db/lab") == "postgresql://me:***@db/lab"
    assert masked("postgresql://me@db/lab") == "postgresql://me@db/lab"
    assert masked("/shared/studies/lander.journal") == "/shared/studies/lander.journal"


# ----------------------------------------------------------------------------- jobs stopped from outside
def test_a_sweep_job_stopped_by_a_signal_records_how_to_resume_it(tmp_path):
    run_dir = tmp_path / "3_agent=dqn,seed=1"
    outcome = run_sweep_job(lambda _listener: {"interrupted_by": signal.SIGTERM, "steps": 1200}, run_dir)
    assert outcome["failed"] is True and outcome["signal"] == "SIGTERM" and outcome["step"] == 1200
    error = json.loads((run_dir / FAILURE_FILE).read_text())["error"]
    assert "stopped from outside by SIGTERM at env step 1200" in error
    # the folder has = and , in its name: Hydra needs the value quoted, and the shell the whole override
    assert error.endswith(f"""continue with rlrun 'resume="{run_dir}"'""")
    assert resume_command(tmp_path / "run") == f"rlrun resume={tmp_path / 'run'}"


def test_squeue_states_stand_in_for_sacct_and_a_job_squeue_forgot_has_ended():
    watcher = JobStateWatcher()
    watcher.use_sacct = False  # as on a cluster without accounting
    for job_id in ("12_0", "12_1", "12_2"):
        watcher.register_job(job_id)
    info = watcher.read_info(b"12_0|RUNNING|node1\n12_1|CANCELLED|node1\n13_0|PENDING|\n")
    assert info["12_0"]["State"] == "RUNNING" and info["12_1"]["State"] == "CANCELLED"
    assert info["12_2"]["State"] == JobStateWatcher.ENDED, "no longer listed: it has ended"
    watcher._info_dict.update(info)
    assert not watcher.is_done("12_0", mode="cache")
    assert watcher.is_done("12_1", mode="cache") and watcher.is_done("12_2", mode="cache")


def test_submitit_slurm_jobs_are_named_after_the_sweep_and_stopped_with_sigterm():
    with initialize_config_module("rlrun.conf", version_base=None):
        cfg = compose("config", overrides=["hydra/launcher=submitit_slurm"], return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["name"] == "rlrun_" + "_".join(Path(cfg.hydra.sweep.dir).parts[-2:])
    assert launcher["additional_parameters"] == {"signal": "TERM@120"}
    assert launcher["_target_"] == "hydra_plugins.rlrun_submitit_launcher.launchers.RlrunSlurmLauncher"
    assert slurm_job_name("outputs/multirun/2026-11-21/10-00-00") == "rlrun_2026-11-21_10-00-00"
    with initialize_config_module("rlrun.conf", version_base=None):
        cfg = compose("config", overrides=["hydra/launcher=population_slurm"], return_hydra_config=True)
    population = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert population.pop("_target_").endswith("RlrunSlurmPopulationLauncher") and population.pop("members") is None
    timed = ("_target_", "name", "submitit_folder")  # the last two hold the sweep folder's time: composed apart
    assert population["name"].startswith("rlrun_") and population["submitit_folder"].endswith(".submitit/%j")
    assert {key: value for key, value in population.items() if key not in timed} == {
        key: value for key, value in launcher.items() if key not in timed
    }, "submitit_slurm's settings"


def test_submitit_local_runs_a_sweep_and_reports_a_job_killed_from_outside(tmp_path):
    """The SLURM code path on one machine; one job SIGKILLed (as by the out-of-memory killer) while the other ends."""
    sweeping = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlrun",
            "-m",
            "hydra/launcher=submitit_local",
            "total_steps=300,10000000",
            *TINY_SWEEP[1:],
            f"hydra.sweep.dir={tmp_path}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("1_*/events.out.tfevents*")) and time.monotonic() < deadline:
        time.sleep(0.3)
    (events,) = tmp_path.glob("1_*/events.out.tfevents*")  # events.out.tfevents.<time>.<host>.<pid>.<n>
    os.kill(int(events.name.split(".")[-2]), signal.SIGKILL)  # as the out-of-memory killer would
    stdout, stderr = sweeping.communicate(timeout=120)
    assert sweeping.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert (tmp_path / ".submitit").is_dir(), "jobs went through submitit"
    finished, killed = job_dirs(tmp_path)
    assert (finished / "results.json").is_file()
    assert json.loads((killed / FAILURE_FILE).read_text())["type"] == "killed from outside"
    rows = {row["config"]: row for row in read_summary(tmp_path)}
    assert rows["total_steps=300"]["runs"] == "1"
    killed_row = rows["total_steps=10000000"]
    assert killed_row["failed"] == "1" and "killed from outside" in killed_row["errors"]


# ----------------------------------------------------------------------------- joblib: a killed job, Ctrl-C, resume
REPO = Path(__file__).resolve().parent.parent
# 4 jobs, 2 at a time, of 1200 env steps slowed to >= 2 ms each (tests/slow_env.py): a job saves last.pt at step 300
# and still has >= 1.8 s to go, time enough to kill it or stop the sweep before it ends.
SLOW_SWEEP = [
    "seed=range(4)",
    "hydra.launcher.n_jobs=2",
    "env=gym",
    "env.id=tests.slow_env:SlowCartPole-v1",
    "total_steps=1200",
    "save_every=300",
    "eval.every=600",
    "eval.episodes=1",
    "agent.learning_starts=100",
    "agent.batch_size=16",
    "device=cpu",
]


@pytest.fixture
def slow_env_importable(monkeypatch):
    """Jobs import tests.slow_env by the env id: the repository on the path of the sweep and its workers."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")


def start_slow_sweep(sweep_dir: Path, cwd: Path) -> tuple[subprocess.Popen, Path]:
    """The installed ``rlrun -m`` from a fresh folder, as a terminal starts it (a process group of its own)."""
    output = cwd / "sweep.log"
    process = subprocess.Popen(
        [RLRUN, "-m", *SLOW_SWEEP, f"hydra.sweep.dir={sweep_dir}"],
        cwd=cwd,
        stdout=output.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, output


def wait_for_files(
    folder: Path, pattern: str, count: int, process: subprocess.Popen, timeout: float = 300
) -> list[Path]:
    deadline = time.monotonic() + timeout
    while len(found := sorted(folder.glob(pattern))) < count:
        assert process.poll() is None, f"the sweep ended (status {process.returncode}) before {pattern} appeared"
        assert time.monotonic() < deadline, f"{pattern} did not appear in {timeout} s"
        time.sleep(0.05)
    return found


def test_a_job_killed_in_a_joblib_sweep_is_recorded_the_others_finish_and_resume_completes_it(
    tmp_path, slow_env_importable
):
    sweep = tmp_path / "sweep"
    process, output = start_slow_sweep(sweep, tmp_path)
    (last,) = wait_for_files(sweep, "0_*/checkpoints/last.pt", 1, process)
    killed = last.parent.parent
    (events,) = killed.glob("events.out.tfevents*")  # events.out.tfevents.<time>.<host>.<pid>.<n>: the job's process
    os.kill(int(events.name.split(".")[-2]), signal.SIGKILL)  # as the out-of-memory killer would
    assert process.wait(timeout=300) == 1, output.read_text()[-3000:]
    log = output.read_text()
    assert "Traceback" not in log and "TerminatedWorkerError" not in log, log[-3000:]

    jobs = job_dirs(sweep)
    assert [job.name.split("_", 1)[0] for job in jobs] == ["0", "1", "2", "3"] and jobs[0] == killed
    failure = json.loads((killed / FAILURE_FILE).read_text())
    assert failure["type"] == "killed from outside" and failure["signal"] == "SIGKILL"
    assert failure["resume"] == resume_command(killed) and failure["resume"] in failure["error"]
    assert not (killed / "results.json").exists()
    for job in jobs[1:]:  # the neighbour kept running, and the two jobs not yet started still ran
        assert json.loads((job / "results.json").read_text())["steps"] == 1200, job.name
    (row,) = read_summary(sweep)
    assert row["runs"] == "3" and row["failed"] == "1" and row["jobs"].split() == [job.name for job in jobs]
    assert "killed from outside by SIGKILL" in row["errors"]
    assert f"rlrun resume={sweep}" in log, "the report says how to continue the sweep"

    finished = {job.name: (job / "results.json").read_text() for job in jobs[1:]}
    continued = run_cli(f"resume={sweep}", "hydra.launcher.n_jobs=1", cwd=tmp_path)  # hydra.* may be added
    assert continued.returncode == 0, continued.stderr[-3000:]
    assert "Traceback" not in continued.stdout + continued.stderr
    assert json.loads((killed / "results.json").read_text())["steps"] == 1200
    assert not (killed / FAILURE_FILE).exists()
    assert f"resuming {killed} at env step" in (killed / "rlrun.log").read_text(), "from last.pt, not from step 0"
    assert {job.name: (job / "results.json").read_text() for job in jobs[1:]} == finished, "finished jobs skipped"
    (row,) = read_summary(sweep)
    assert row["runs"] == "4" and row["failed"] == "0"


def test_ctrl_c_on_a_joblib_sweep_checkpoints_its_running_jobs_reports_them_and_exits_130(
    tmp_path, slow_env_importable
):
    sweep = tmp_path / "sweep"
    process, output = start_slow_sweep(sweep, tmp_path)
    wait_for_files(sweep, "[01]_*/checkpoints/last.pt", 2, process)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: to the sweep's whole process group
    assert process.wait(timeout=300) == 130, output.read_text()[-3000:]
    log = output.read_text()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]

    running = job_dirs(sweep)
    assert [job.name.split("_", 1)[0] for job in running] == ["0", "1"], "no job started after Ctrl-C"
    for job in running:
        failure = json.loads((job / FAILURE_FILE).read_text())
        assert failure["type"] == "interrupted" and failure["signal"] == "SIGINT", job.name
        checkpoint = load_checkpoint(job / "checkpoints" / "last.pt")
        assert checkpoint["progress"]["step"] == failure["step"] > 0 and "run_state" in checkpoint
    (row,) = read_summary(sweep)
    assert row["runs"] == "0" and row["failed"] == "2" and row["errors"].count("stopped from outside by SIGINT") == 2
    report = (sweep / "summary.md").read_text()
    assert "stopped by SIGINT" in report and "Not started (2):" in report and "- #2 seed=2" in report
    assert "- #3 seed=3" in report and f"rlrun resume={sweep}" in report and "Not started (2):" in log, "printed too"


def test_resume_of_a_sweep_folder_is_the_sweep_command_again_into_that_folder(tmp_path):
    sweep = tmp_path / "multirun" / "10-00-00"
    sweep.mkdir(parents=True)
    record = {
        "hydra": {
            "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"},
            "overrides": {
                "hydra": ["hydra.launcher.n_jobs=2", "hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep}"],
                "task": ["seed=range(4)", "agent=dqn,double_dqn"],
            },
        }
    }
    OmegaConf.save(OmegaConf.create(record), sweep / "multirun.yaml")
    assert sweep_command([f"resume={sweep}", "hydra.launcher.n_jobs=1"]) == [
        "-m",
        "hydra.launcher.n_jobs=2",
        "hydra.mode=MULTIRUN",
        "hydra.launcher.n_jobs=1",
        "seed=range(4)",
        "agent=dqn,double_dqn",
        f"hydra.sweep.dir={sweep}",
        f"++hydra.job.env_set.{CONTINUE_VARIABLE}=1",
    ]
    assert sweep_command([f"resume={tmp_path}"]) == [f"resume={tmp_path}"], "a run folder: the single-run resume"
    assert sweep_command(["-m", f"resume={sweep}"]) == ["-m", f"resume={sweep}"]
    with pytest.raises(ConfigError, match="cannot take total_steps=10"):
        sweep_command([f"resume={sweep}", "total_steps=10"])
    record["hydra"]["sweeper"]["_target_"] = "hydra_plugins.rlrun_optuna_sweeper.optuna_sweeper.RlrunOptunaSweeper"
    OmegaConf.save(OmegaConf.create(record), sweep / "multirun.yaml")
    with pytest.raises(ConfigError, match="An Optuna study continues from its storage"):
        sweep_command([f"resume={sweep}"])


def test_a_job_of_a_continued_sweep_goes_on_from_what_its_folder_holds(tmp_path, monkeypatch):
    job = tmp_path / "0_seed=0"
    (job / "checkpoints").mkdir(parents=True)
    (job / "events.out.tfevents.1.host.2.0").write_text("")
    (job / FAILURE_FILE).write_text("{}")
    assert continue_job(job) is None, "in a new sweep a job just runs"
    monkeypatch.setenv(CONTINUE_VARIABLE, "1")
    assert continue_job(job) == START_AGAIN and not (job / FAILURE_FILE).exists()
    assert not list(job.glob("events.out.tfevents*")), "the curves of the attempt that starts over are dropped"
    (job / "checkpoints" / "last.pt").write_bytes(b"")
    (job / FAILURE_FILE).write_text("{}")
    assert continue_job(job) == FROM_CHECKPOINT and not (job / FAILURE_FILE).exists()
    (job / "results.json").write_text("{}")
    assert continue_job(job) == FINISHED
