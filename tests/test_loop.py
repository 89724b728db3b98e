"""A short CartPole run end to end: TensorBoard scalars, checkpoints, evaluate mode, determinism."""

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlrun.checkpoints import load_checkpoint
from rlrun.loop import Trainer, train
from tests.conftest import TINY_RUN, compose_cfg

EXPECTED_SCALARS = {
    "charts/episodic_return", "charts/episodic_length", "charts/steps_per_second", "train/epsilon",
    "losses/td_loss", "losses/q_values", "eval/mean_return", "eval/std_return",
}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    result = train(compose_cfg(*TINY_RUN), run_dir)
    return run_dir, result


def read_scalars(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return events


def test_run_writes_every_scalar_against_env_steps(trained_run):
    run_dir, _ = trained_run
    events = read_scalars(run_dir)
    assert EXPECTED_SCALARS <= set(events.Tags()["scalars"])
    eval_steps = [e.step for e in events.Scalars("eval/mean_return")]
    assert eval_steps == [300, 600]
    epsilons = [e.value for e in events.Scalars("train/epsilon")]
    assert epsilons[0] > epsilons[-1]  # linear schedule decays
    assert max(e.step for e in events.Scalars("losses/td_loss")) == 600
    assert min(e.step for e in events.Scalars("losses/td_loss")) >= 100  # no loss before learning_starts


def test_results_json_summarises_the_run(trained_run):
    run_dir, result = trained_run
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["steps"] == 600 and saved["best_eval_return"] == result["best_eval_return"]
    assert [step for step, _ in saved["eval_history"]] == [300, 600]
    assert saved["solved_at_return"] == 475.0  # CartPole-v1's registered threshold
    assert max(mean for _, mean in saved["eval_history"]) == saved["best_eval_return"]
    seconds = saved["eval_wall_seconds"]  # for time-to-threshold (benchmarks/learning.py)
    assert len(seconds) == 2 and 0 < seconds[0] < seconds[1] <= saved["wall_seconds"] + 1.0


def test_hparams_are_written_into_the_same_run(trained_run):
    run_dir, result = trained_run
    events = read_scalars(run_dir)
    assert events.Scalars("hparam/best_eval_return")[0].value == pytest.approx(result["best_eval_return"])
    assert events.Scalars("hparam/final_eval_return")[0].value == pytest.approx(result["final_eval_return"])
    assert [p for p in run_dir.iterdir() if p.is_dir() and p.name != "checkpoints"] == []  # no sub-run folder


def test_best_and_last_checkpoints_hold_everything_to_resume(trained_run):
    run_dir, result = trained_run
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert last["progress"]["step"] == 600
    assert best["progress"]["best_eval_return"] == pytest.approx(result["best_eval_return"])
    assert set(last["agent"]) >= {"online", "target", "optimizer", "rng", "last_update_step"}
    assert last["config"]["agent"]["name"] == "dqn" and last["spaces"] == {"obs_shape": [4], "actions": 2}
    assert not list((run_dir / "checkpoints").glob("*.tmp"))


def test_evaluate_mode_rebuilds_from_checkpoint_and_writes_eval_json(trained_run, tmp_path):
    from rlrun.cli import run

    run_dir, _ = trained_run
    checkpoint = str(run_dir / "checkpoints" / "best.pt")
    cfg = compose_cfg("mode=evaluate", f"checkpoint={checkpoint}", "eval.episodes=3", "env.num_envs=2")
    report = run(cfg, tmp_path, ["mode=evaluate", f"checkpoint={checkpoint}", "eval.episodes=3"])
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["episodes"] == 3 and len(saved["returns"]) == 3
    assert saved["mean"] == pytest.approx(sum(saved["returns"]) / 3)
    assert report["config"]["env"]["num_envs"] == 1  # not a CLI override here: the checkpoint's value is kept
    assert report["config"]["total_steps"] == 600


def test_same_seed_gives_identical_returns(tmp_path):
    def returns(run_dir):
        trainer = Trainer(compose_cfg(*TINY_RUN, "seed=7"), run_dir)
        trainer.run()
        events = read_scalars(run_dir)
        return [e.value for e in events.Scalars("charts/episodic_return")], trainer.agent.online.state_dict()

    (r1, w1), (r2, w2) = returns(tmp_path / "a"), returns(tmp_path / "b")
    assert len(r1) > 5 and r1 == r2
    for key in w1:
        assert torch.equal(w1[key], w2[key])


def test_different_seeds_differ(tmp_path):
    def returns(seed, run_dir):
        train(compose_cfg(*TINY_RUN, f"seed={seed}"), run_dir)
        return [e.value for e in read_scalars(run_dir).Scalars("charts/episodic_return")]

    assert returns(1, tmp_path / "a") != returns(2, tmp_path / "b")


def test_vector_envs_count_every_sub_env_step(tmp_path):
    result = train(compose_cfg(*TINY_RUN, "env.num_envs=4"), tmp_path)
    assert result["steps"] == 600 and result["episodes"] > 0


def test_stop_at_return_ends_the_run_early(tmp_path):
    result = train(compose_cfg(*TINY_RUN, "stop_at_return=0"), tmp_path)
    assert result["steps"] == 300  # first evaluation already reaches a return of 0
