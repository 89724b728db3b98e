"""A short CartPole run end to end: TensorBoard scalars, checkpoints, evaluate mode, determinism."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlrun.checkpoints import load_checkpoint
from rlrun.loop import Trainer, train
from tests.conftest import TINY_RUN, compose_cfg

EXPECTED_SCALARS = {
    "charts/episodic_return",
    "charts/episodic_length",
    "charts/steps_per_second",
    "train/epsilon",
    "losses/td_loss",
    "losses/q_values",
    "eval/mean_return",
    "eval/std_return",
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
    assert set(events.Tags()["scalars"]) >= EXPECTED_SCALARS
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


@pytest.mark.parametrize(
    "agent,keys",
    [
        ("reinforce", {"baseline": "none", "episodes_per_update": 4.0, "normalize_returns": "True"}),
        (
            "ppo",
            {
                "n_steps": 2048.0,
                "clip_range": 0.2,
                "gae_lambda": 0.95,
                "ent_coef": 0.0,
                "normalize_obs": "False",
                "baseline": "-",
                "double": "-",
            },
        ),
        (
            "a2c",
            {"n_epochs": 1.0, "clip_range": float("nan"), "batch_size": float("nan"), "normalize_advantage": "False"},
        ),
        ("dqn", {"batch_size": 64.0, "double": "False", "per_alpha": float("nan"), "target_update_every": 500}),
    ],
)
def test_hparams_hold_each_agent_family_s_own_keys(agent, keys):
    from rlrun.logger import flat_hparams

    values = flat_hparams(compose_cfg(f"agent={agent}", "~tuned"))  # the group defaults
    for key, expected in keys.items():
        if expected != expected:  # NaN: the agent has no such key
            assert values[key] != values[key], (key, values[key])
        else:
            assert values[key] == expected, (key, values[key])


def test_tabular_q_hparams_name_its_learning_rate():
    from rlrun.logger import flat_hparams

    values = flat_hparams(compose_cfg("agent=tabular_q", "env=gym", "env.id=Taxi-v4", "agent.alpha=0.3"))
    assert values["alpha"] == 0.3 and values["per_alpha"] != values["per_alpha"]


def test_progress_bar_shows_only_what_the_agent_has():
    from rlrun.loop import progress_fields

    fields = progress_fields(12.0, None, {"losses/policy_loss": 0.1})
    assert fields == {"ret": "12.0", "eval": "-"}  # REINFORCE: no epsilon, so no eps=nan
    fields = progress_fields(12.0, {"mean": 50.0}, {"train/epsilon": 0.25})
    assert fields == {"ret": "12.0", "eps": "0.250", "eval": "50.0"}
    fields = progress_fields(
        12.0, None, {"losses/approx_kl": 0.0123, "losses/explained_variance": 0.91, "train/lr": 1e-3}
    )
    assert fields == {"ret": "12.0", "kl": "0.0123", "ev": "0.91", "eval": "-"}  # actor-critic


def test_logged_episode_returns_and_lengths_are_the_true_ones(tmp_path):
    # Counted here from the transitions themselves, per sub-env. Gymnasium < 1.4's vector RecordEpisodeStatistics
    # logged every episode after a sub-env's first one a step short under same-step autoreset.
    no_dqn_keys = [o for o in TINY_RUN if not o.startswith("agent.")]
    trainer = Trainer(compose_cfg(*no_dqn_keys, "agent=random", "env.num_envs=3", "seed=2"), tmp_path)
    observe, true_episodes = trainer.agent.observe, []
    lengths, returns = np.zeros(3, dtype=int), np.zeros(3)

    def counting_observe(obs, actions, rewards, next_obs, terminated, truncated):
        lengths[:] += 1
        returns[:] += rewards
        for i in np.flatnonzero(np.logical_or(terminated, truncated)):
            true_episodes.append((int(lengths[i]), float(returns[i])))
            lengths[i], returns[i] = 0, 0.0
        return observe(obs, actions, rewards, next_obs, terminated, truncated)

    trainer.agent.observe = counting_observe
    trainer.run()
    events = read_scalars(tmp_path)
    logged_lengths = [int(e.value) for e in events.Scalars("charts/episodic_length")]
    logged_returns = [e.value for e in events.Scalars("charts/episodic_return")]
    assert len(true_episodes) > 20
    assert logged_lengths == [length for length, _ in true_episodes]
    assert logged_returns == pytest.approx([ret for _, ret in true_episodes])


# One short run per agent family (two sub-envs each), for checks that must hold for every agent.
FAMILY_RUNS = {
    "dqn": ["agent=dqn", "agent.learning_starts=100", "agent.batch_size=32"],
    "reinforce": ["agent=reinforce", "agent.episodes_per_update=2"],
    "tabular_q": ["agent=tabular_q", "env=gym", "env.id=FrozenLake-v1"],
    "ppo": [
        "agent=ppo",
        "~tuned",
        "agent.n_steps=32",
        "agent.batch_size=16",
        "agent.n_epochs=2",
        "agent.normalize_obs=true",
    ],
    "a2c": ["agent=a2c", "~tuned"],
    "random": ["agent=random"],
    "heuristic": ["agent=heuristic"],
}


@pytest.mark.parametrize("family", FAMILY_RUNS)
def test_evaluations_and_videos_never_change_the_training_episodes(tmp_path, family):
    common = [
        "total_steps=600",
        "env.num_envs=2",
        "eval.episodes=2",
        "save_every=1000",
        "log_every=50",
        "device=cpu",
        "seed=4",
        *FAMILY_RUNS[family],
    ]

    def training_episodes(run_dir, *watching):
        train(compose_cfg(*common, *watching), run_dir)
        return [(e.step, e.value) for e in read_scalars(run_dir).Scalars("charts/episodic_return")]

    unwatched = training_episodes(tmp_path / "unwatched", "eval.every=100000")
    watched = training_episodes(tmp_path / "watched", "eval.every=50", "eval.video_every=300")
    assert len(unwatched) > 5 and watched == unwatched
    assert len(read_scalars(tmp_path / "watched").Scalars("eval/mean_return")) == 12
