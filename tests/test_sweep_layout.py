"""A sweep as a user browses it in TensorBoard: run names that say what differs, HParams columns that belong."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from rlrun.hparams import HPARAM_KEYS, SweepLayout, relevant_hparams, sweep_hparam_columns
from rlrun.plots import EVAL_RETURN, read_scalars
from rlrun.sweeps.layout import folder_naming, shared_overrides, varying_keys
from rlrun.sweeps.optuna_search import configs_to_inspect
from tests.conftest import compose_cfg, run_cli
from tests.test_sweeps import TINY_SWEEP, job_dirs, read_summary


# ----------------------------------------------------------------------------- what varies
def test_only_keys_with_more_than_one_value_vary():
    jobs = [
        [f"agent={agent}", f"seed={seed}", "total_steps=300", "+eval.episodes=1"]
        for agent in ("dqn", "double_dqn")
        for seed in (0, 1)
    ]
    assert varying_keys(jobs) == ["agent", "seed"]
    assert shared_overrides(jobs, ["agent", "seed"]) == ["total_steps=300", "+eval.episodes=1"]
    assert varying_keys([["seed=0"], ["seed=1"]]) == ["seed"], "a single-key sweep"
    assert varying_keys([["seed=0"], ["seed=0", "agent.lr=0.1"]]) == ["agent.lr"], "absent is a value of its own"


def test_a_job_folder_leaves_the_shared_keys_to_hydra_s_exclude_keys():
    job = ["agent=dqn", "seed=0", "++eval.episodes=1", "++hydra.job.env_set.RLRUN_OPTUNA_TRIAL=3"]
    named = folder_naming(job, ["agent", "seed"], excluded=["device"])
    assert named[:-1] == job, "the job's own overrides (and so its .hydra/overrides.yaml) are unchanged"
    assert named[-1] == "hydra.job.config.override_dirname.exclude_keys=['device','eval.episodes']"
    with initialize_config_module("rlrun.conf", version_base=None):
        cfg = compose("config", overrides=named, return_hydra_config=True)  # as the launcher composes the job
    assert cfg.hydra.job.override_dirname == "agent=dqn,seed=0"
    assert folder_naming(["seed=3"], []) == ["seed=3"], "a one-job sweep names all its overrides"


def test_a_sweep_layout_is_read_back_and_a_foreign_sweep_yaml_is_ignored(tmp_path):
    layout = SweepLayout(["agent", "seed"], ["total_steps=300"], ["agent", "seed", "lr"], ["agent", "seed"])
    layout.save(tmp_path)
    assert SweepLayout.load(tmp_path) == layout
    (tmp_path / "sweep.yaml").write_text("name: not a layout\n")
    assert SweepLayout.load(tmp_path) is None and SweepLayout.load(tmp_path / "nowhere") is None


# ----------------------------------------------------------------------------- HParams columns
def test_a_sweep_s_columns_are_its_swept_keys_then_what_its_families_have():
    # without the tuned files, whose CartPole DQN anneals the learning rate (an lr_end column)
    dqn, reinforce = compose_cfg("agent=dqn", "~tuned"), compose_cfg("agent=reinforce")
    per_dqn = compose_cfg("agent=per_dqn", "~tuned")
    columns = sweep_hparam_columns(["agent", "seed", "agent.lr", "eval.episodes"], [dqn, per_dqn])
    assert columns[:4] == ["agent", "seed", "lr", "eval.episodes"], "swept keys first, by their column names"
    assert {"batch_size", "double", "per_alpha", "capacity"} <= set(columns)
    assert not {"alpha", "alpha_decay", "baseline", "episodes_per_update"} & set(columns), "no other family's keys"
    assert "lr_end" not in columns, "null in every config (no anneal): nothing to show"
    assert "buffer" not in relevant_hparams(reinforce) and "baseline" in relevant_hparams(reinforce)
    mixed = sweep_hparam_columns(["agent"], [dqn, reinforce])
    assert {"batch_size", "baseline"} <= set(mixed) and list(HPARAM_KEYS)[0] == mixed[0] == "agent"


def test_an_optuna_study_takes_its_columns_from_each_agent_it_may_pick():
    space = {
        "agent": optuna.distributions.CategoricalDistribution(["dqn", "reinforce"]),
        "agent.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
    }
    assert configs_to_inspect(space, ["total_steps=300"]) == [
        ["total_steps=300", "agent=dqn"],
        ["total_steps=300", "agent=reinforce"],
    ]


# ----------------------------------------------------------------------------- TensorBoard, over its HTTP API
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tensorboard_json(port: int, route: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/data/{route}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def tensorboard():
    """``tensorboard --logdir DIR`` on a free loopback port; yields a function that starts it, stopped afterwards."""
    processes = []

    def start(logdir: Path) -> int:
        port = free_port()
        processes.append(
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "tensorboard"),
                    "--logdir",
                    str(logdir),
                    "--port",
                    str(port),
                    "--host",
                    "127.0.0.1",
                    "--reload_interval",
                    "1",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        return port

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def check_summary_run(sweep: Path, port: int) -> None:
    """The Custom Scalars layout has a margin chart per metric, and each config run holds its IQM curve and band,
    as TensorBoard serves them."""
    layout = tensorboard_json(port, "plugin/custom_scalars/layout")
    (category,) = layout["category"]
    assert category["title"].startswith("sweep: IQM over seeds")
    charts = {chart["title"]: chart["margin"]["series"] for chart in category["chart"]}
    assert charts == {
        "greedy eval return": [{"value": "eval_return", "lower": "eval_return/low", "upper": "eval_return/high"}],
        "training return (moving average)": [
            {"value": "train_return", "lower": "train_return/low", "upper": "train_return/high"}
        ],
    }
    for agent in ("dqn", "double_dqn"):
        query = urllib.parse.urlencode({"run": f"summary/agent={agent}", "tag": "eval_return.*"})
        events = tensorboard_json(port, f"plugin/custom_scalars/scalars?{query}")["tag_to_events"]
        center, low, high = (
            [event[2] for event in events[tag]] for tag in ("eval_return", "eval_return/low", "eval_return/high")
        )
        seeds = [read_scalars(job)[EVAL_RETURN] for job in job_dirs(sweep) if f"agent={agent}," in job.name]
        assert [event[1] for event in events["eval_return"]] == seeds[0].steps.tolist() == [150, 300]
        # two seeds: the IQM drops nothing, it is their mean
        assert center == pytest.approx(np.mean([run.values for run in seeds], axis=0), abs=1e-4)
        assert all(lo - 1e-4 <= c <= hi + 1e-4 for lo, c, hi in zip(low, center, high))


def test_tensorboard_names_runs_by_what_varies_and_shows_the_swept_keys_first(tmp_path, tensorboard):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m", "hydra/launcher=basic", "agent=dqn,double_dqn", "seed=range(2)", *TINY_SWEEP, f"hydra.sweep.dir={sweep}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    layout = SweepLayout.load(sweep)
    assert layout.varying == ["agent", "seed"] and layout.every_job == TINY_SWEEP, "shared overrides said once"
    for job in job_dirs(sweep):
        assert OmegaConf.load(job / ".hydra" / "overrides.yaml")[2:] == TINY_SWEEP, "and kept in every job"
    port = tensorboard(sweep)

    deadline, runs, experiment = time.monotonic() + 30, [], {}
    while time.monotonic() < deadline and not (len(runs) == 7 and experiment.get("hparamInfos")):
        time.sleep(0.5)
        try:
            runs = tensorboard_json(port, "runs")
            experiment = tensorboard_json(port, "plugin/hparams/experiment", {"experimentName": ""})
        except OSError:  # not listening yet
            continue
    assert sorted(runs) == [
        "0_agent=dqn,seed=0",
        "1_agent=dqn,seed=1",
        "2_agent=double_dqn,seed=0",
        "3_agent=double_dqn,seed=1",
        "summary",
        "summary/agent=double_dqn",
        "summary/agent=dqn",
    ]
    check_summary_run(sweep, port)
    runs = [run for run in runs if not run.startswith("summary")]

    columns = [info["name"] for info in experiment["hparamInfos"]]
    assert columns[:2] == ["agent", "seed"] and [info["differs"] for info in experiment["hparamInfos"][:3]] == [
        True,
        True,
        False,
    ], "the swept keys come first (TensorBoard sorts by `differs`, then by name)"
    assert sorted(columns) == sorted(layout.hparams) and {"batch_size", "double"} <= set(columns)
    assert not {"alpha", "alpha_decay", "baseline"} & set(columns), "no tabular Q or REINFORCE columns"
    metrics = [info["name"]["tag"] for info in experiment["metricInfos"]]
    assert metrics == ["hparam/best_eval_return", "hparam/final_eval_return"], "the first five are shown by default"

    groups = tensorboard_json(
        port,
        "plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE"],
            "colParams": [{"hparam": name} for name in columns],
            "startIndex": 0,
            "sliceSize": 10,
        },
    )["sessionGroups"]
    configs = {group["name"]: group for group in groups if group["name"].startswith("summary/")}
    groups = [group for group in groups if group["name"] not in configs]
    assert sorted(group["name"] for group in groups) == sorted(runs)
    summary = {row["config"]: row for row in read_summary(sweep)}
    for name, group in configs.items():  # a row per config: its hparams, the IQM of its runs' returns as metrics
        config = name.split("/", 1)[1]
        assert group["hparams"]["agent"] == config.split("=")[1] and "seed" not in group["hparams"]
        metrics = {metric["name"]["tag"]: metric["value"] for metric in group["metricValues"]}
        assert metrics["hparam/final_eval_return"] == pytest.approx(float(summary[config]["final_return_iqm"]))
        assert metrics["hparam/best_eval_return"] == pytest.approx(float(summary[config]["best_return_iqm"]))
    assert sorted(configs) == ["summary/agent=double_dqn", "summary/agent=dqn"]
    for group in groups:
        values = group["hparams"]
        assert set(values) == set(columns), group["name"]
        assert all(value not in ("-", "NaN") and value == value for value in values.values()), values
        assert {metric["name"]["tag"] for metric in group["metricValues"]} == set(metrics)
        assert f"agent={values['agent']},seed={int(values['seed'])}" in group["name"]
