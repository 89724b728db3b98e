"""Heuristic policies: the rules themselves, the loop in train mode, evaluate mode without a checkpoint, errors."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.box2d.lunar_lander import heuristic as gymnasium_lander_heuristic

from rlrun.agents import HeuristicAgent, agent_learns, build_agent
from rlrun.agents.heuristic import cartpole_pole_angle, heuristic_for
from rlrun.config import validate
from rlrun.loop import train
from tests.conftest import compose_cfg, run_cli
from tests.test_cli import assert_clean_failure


def test_cartpole_rule_pushes_towards_the_lean():
    obs = np.array([[0.0, 0.0, -0.05, 0.0], [0.0, 0.0, 0.05, 0.0], [1.0, -2.0, 0.0, 3.0]], dtype=np.float32)
    assert cartpole_pole_angle(obs, gym.spaces.Discrete(2)).tolist() == [0, 1, 1]


@pytest.mark.parametrize("env_id", ["LunarLander-v3", "LunarLanderContinuous-v3"])
def test_lunar_lander_uses_gymnasiums_heuristic(env_id):
    env = gym.make(env_id)
    policy = heuristic_for(env_id)
    obs, _ = env.reset(seed=0)
    for _ in range(30):
        ours = policy(obs[None], env.action_space)[0]
        np.testing.assert_allclose(ours, gymnasium_lander_heuristic(env, obs), rtol=1e-6)
        assert env.action_space.contains(ours)
        obs, *_ = env.step(ours)


def test_heuristics_are_found_by_env_name_in_any_version():
    assert heuristic_for("CartPole-v0") is heuristic_for("CartPole-v1") is cartpole_pole_angle
    assert heuristic_for("Acrobot-v1") is None


def test_heuristic_and_random_need_no_checkpoint_but_learners_do():
    assert not agent_learns("heuristic") and not agent_learns("random")
    assert agent_learns("dqn") and agent_learns("reinforce") and agent_learns("tabular_q")


def test_preset_composes_and_builds():
    cfg = compose_cfg("agent=heuristic", "env=lunarlander")
    validate(cfg)
    env = gym.make("LunarLander-v3")
    assert isinstance(build_agent(cfg, env.observation_space, env.action_space, torch.device("cpu")), HeuristicAgent)


def test_runs_in_train_mode_as_a_reference_curve(tmp_path):
    result = train(
        compose_cfg("agent=heuristic", "total_steps=1000", "eval.every=500", "eval.episodes=3", "device=cpu"), tmp_path
    )
    # a fixed policy: the same greedy return at every evaluation, and well above random's ~20
    assert result["best_eval_return"] == result["final_eval_return"] > 30


def test_evaluate_mode_without_checkpoint_writes_eval_json(tmp_path):
    result = run_cli("mode=evaluate", "agent=heuristic", "env=cartpole", "eval.episodes=5", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["agent"] == "heuristic" and report["checkpoint"] is None and report["episodes"] == 5
    assert 30 < report["mean"] < 100  # the chapter's rule: better than random, far from solving


def test_lunar_lander_heuristic_lands(tmp_path):
    from rlrun.cli import run

    # 100 held-out episodes (mode=evaluate's default seeds): 215 on average; a few episodes of 5 or 10 can land
    # anywhere from 190 to 270 (README "Heuristic policies")
    report = run(
        compose_cfg("mode=evaluate", "agent=heuristic", "env=lunarlander", "eval.episodes=100"),
        tmp_path,
        ["mode=evaluate", "agent=heuristic", "env=lunarlander", "eval.episodes=100"],
    )
    assert report["mean"] > 200  # LunarLander's "solved" threshold


def test_env_without_a_heuristic_is_a_clear_error(tmp_path):
    result = run_cli("agent=heuristic", "env=acrobot", f"hydra.run.dir={tmp_path}")
    assert_clean_failure(
        result, r"agent=heuristic has no hand-written policy for env\.id=Acrobot-v1", "CartPole", "LunarLander"
    )
