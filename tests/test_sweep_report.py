"""The sweep report's statistics: per-config IQM and mean with intervals, pairwise probabilities of improvement."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlrun.sweeps.report import IMPROVEMENT_CSV, write_summary
from tests.conftest import run_cli
from tests.test_sweeps import TINY_SWEEP, job_dirs, read_summary


def write_job(sweep_dir: Path, number: int, overrides: list[str], best: float, final: float) -> None:
    """A finished job folder as a sweep leaves it: its overrides, its config and its results.json."""
    folder = sweep_dir / f"{number}_{','.join(overrides)}"
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
    config = {key: value for key, value in (item.split("=", 1) for item in overrides)}
    OmegaConf.save(OmegaConf.create(config), folder / ".hydra" / "config.yaml")
    (folder / "results.json").write_text(
        json.dumps(
            {"best_eval_return": best, "final_eval_return": final, "wall_seconds": 1.0, "solved_at_return": None}
        )
    )


def fake_sweep(sweep_dir: Path, finals: dict[str, list[float]]) -> Path:
    number = 0
    for agent, values in finals.items():
        for seed, value in enumerate(values):
            write_job(sweep_dir, number, [f"agent={agent}", f"seed={seed}"], best=value + 1.0, final=value)
            number += 1
    return sweep_dir


def test_each_config_gets_its_iqm_and_mean_with_intervals(tmp_path):
    # 8 seeds: the IQM drops 2 at each end; 1000 is an outlier the IQM ignores and the mean does not
    finals = {"a": [5.0, -100, 3, 1000, 1, 7, 2, 6], "b": [10.0, 11, 12, 13]}
    rows, report = write_summary(fake_sweep(tmp_path, finals))
    a = next(row for row in rows if row.config == "agent=a")
    assert a.final_estimates["iqm"].value == pytest.approx(4.0)
    assert a.final_estimates["mean"].value == pytest.approx(sum(finals["a"]) / 8)
    assert a.best_estimates["iqm"].value == pytest.approx(5.0), "best returns are the finals + 1 here"
    for estimates in (a.final_estimates, a.best_estimates):
        for estimate in estimates.values():
            assert estimate.low <= estimate.value <= estimate.high and estimate.low < estimate.high
    assert [row.config for row in rows] == ["agent=b", "agent=a"], "sorted by IQM of the best return"

    record = {row["config"]: row for row in read_summary(tmp_path)}["agent=a"]
    assert float(record["final_return_iqm"]) == pytest.approx(4.0)
    assert float(record["final_return_iqm_low"]) == pytest.approx(a.final_estimates["iqm"].low)
    assert float(record["final_return_mean_high"]) == pytest.approx(a.final_estimates["mean"].high)
    assert f"| agent=a | 8 | {a.best_estimates['iqm']} | {a.best_estimates['mean']} |" in report


def test_two_to_six_configs_get_the_pairwise_probability_of_improvement(tmp_path):
    finals = {"low": [1.0, 2, 3], "high": [10.0, 20, 30], "mixed": [2.5, 15, 25]}
    _, report = write_summary(fake_sweep(tmp_path / "three", finals))
    with open(tmp_path / "three" / IMPROVEMENT_CSV, newline="") as handle:
        pairs = {(line["x"], line["y"]): line for line in csv.DictReader(handle)}
    assert set(pairs) == {("agent=high", "agent=low"), ("agent=mixed", "agent=low"), ("agent=high", "agent=mixed")}
    assert float(pairs["agent=high", "agent=low"]["p_x_beats_y"]) == 1.0, "every run of high beats every run of low"
    assert float(pairs["agent=high", "agent=low"]["low"]) == 1.0
    # mixed vs low, by hand: 2.5 beats 1 and 2 (not 3), 15 and 25 beat all three: 8 of 9 pairs
    assert float(pairs["agent=mixed", "agent=low"]["p_x_beats_y"]) == pytest.approx(8 / 9)
    # high vs mixed: 10 beats 2.5 only, 20 beats 2.5 and 15, 30 beats all: 6 of 9, written the way round P >= 0.5
    assert float(pairs["agent=high", "agent=mixed"]["p_x_beats_y"]) == pytest.approx(6 / 9)
    assert "| agent=high | agent=low | 1.00 [1.00, 1.00] |" in report

    write_summary(fake_sweep(tmp_path / "one", {"only": [1.0, 2.0]}))
    write_summary(fake_sweep(tmp_path / "seven", {str(k): [float(k)] for k in range(7)}))
    assert not (tmp_path / "one" / IMPROVEMENT_CSV).exists() and not (tmp_path / "seven" / IMPROVEMENT_CSV).exists()


def test_a_seed_sweep_of_two_agents_prints_their_iqms_and_who_beats_whom(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m",
        "agent=dqn,double_dqn",
        "seed=range(4)",
        "env=cartpole",
        *TINY_SWEEP,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_summary(sweep)
    assert sorted(row["config"] for row in rows) == ["agent=double_dqn", "agent=dqn"]
    finals = {}
    for row in rows:
        jobs = [job for job in job_dirs(sweep) if row["config"] + "," in job.name]
        finals[row["config"]] = [json.loads((job / "results.json").read_text())["final_eval_return"] for job in jobs]
        ordered = sorted(finals[row["config"]])
        assert len(ordered) == 4 and float(row["final_return_iqm"]) == pytest.approx((ordered[1] + ordered[2]) / 2)
        assert (
            float(row["final_return_iqm_low"]) <= float(row["final_return_iqm"]) <= float(row["final_return_iqm_high"])
        )
        assert f"| {row['config']} | 4 | " in result.stdout
    pairs = sum((a > b) + 0.5 * (a == b) for a in finals["agent=double_dqn"] for b in finals["agent=dqn"]) / 16
    x, y, p = ("agent=double_dqn", "agent=dqn", pairs) if pairs >= 0.5 else ("agent=dqn", "agent=double_dqn", 1 - pairs)
    assert f"| {x} | {y} | {p:.2f} [" in result.stdout, result.stdout[-2000:]
    assert "P(X > Y)" in result.stdout
