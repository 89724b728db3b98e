"""Tabular Q-learning: the TD update by hand, alpha decay, the table as checkpoint, errors, learning."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlrun.agents import TabularQAgent, build_agent
from rlrun.checkpoints import load_checkpoint
from rlrun.config import TabularQConfig, validate
from rlrun.errors import ConfigError
from rlrun.loop import train
from rlrun.schedules import ConstantSchedule
from tests.conftest import compose_cfg, run_cli
from tests.test_cli import assert_clean_failure


def make_agent(n_states=4, n_actions=2, epsilon=0.0, **overrides) -> TabularQAgent:
    return TabularQAgent(TabularQConfig(**overrides), n_states, n_actions, ConstantSchedule(epsilon), seed=0)


def transition(agent, obs, actions, rewards, next_obs, terminated, truncated=None, step=1):
    n = len(obs)
    truncated = np.zeros(n, bool) if truncated is None else np.asarray(truncated)
    agent.observe(
        np.asarray(obs),
        np.asarray(actions),
        np.asarray(rewards, float),
        np.asarray(next_obs),
        np.asarray(terminated),
        truncated,
    )
    return agent.update(step, 0)


def test_td_update_bootstraps_on_truncation_but_not_on_termination():
    agent = make_agent(alpha=0.5, gamma=0.9)
    agent.q_table[3] = [2.0, 4.0]  # max Q(s'=3) = 4
    # env 0 terminates, env 1 is truncated by a time limit: only env 1 values the next state
    transition(
        agent,
        obs=[0, 1],
        actions=[1, 0],
        rewards=[1.0, 1.0],
        next_obs=[3, 3],
        terminated=[True, False],
        truncated=[False, True],
    )
    assert agent.q_table[0, 1] == pytest.approx(0.5 * 1.0)
    assert agent.q_table[1, 0] == pytest.approx(0.5 * (1.0 + 0.9 * 4.0))


def sequential_reference(q_table, obs, actions, rewards, next_obs, terminated, alphas, gamma):
    """The TD updates one transition after another, in plain Python: what num_envs=1 would do."""
    q = [list(map(float, row)) for row in q_table]
    for s, a, r, s2, done, alpha in zip(obs, actions, rewards, next_obs, terminated, alphas):
        target = r + (0.0 if done else gamma * max(q[s2]))
        q[s][a] += alpha * (target - q[s][a])
    return np.array(q)


def test_one_step_of_several_sub_envs_equals_their_updates_in_sequence():
    agent = make_agent(n_states=4, n_actions=2, alpha=0.5, gamma=0.9)
    agent.q_table[:] = [[0.0, 1.0], [2.0, -1.0], [0.5, 0.5], [3.0, 0.0]]
    start = agent.q_table.copy()
    # env 0 and env 2 share (s=1, a=0); env 1 bootstraps from state 1, whose values env 0 just changed
    obs, actions, rewards = [1, 3, 1, 0], [0, 0, 0, 1], [1.0, -2.0, 0.5, 4.0]
    next_obs, terminated = [2, 1, 3, 1], [False, False, True, False]
    transition(agent, obs, actions, rewards, next_obs, terminated, step=4)
    expected = sequential_reference(start, obs, actions, rewards, next_obs, terminated, [0.5] * 4, 0.9)
    np.testing.assert_allclose(agent.q_table, expected, rtol=0, atol=1e-12)


def test_duplicated_state_actions_converge_without_oscillating():
    # Five sub-envs make the same terminal transition, r=1: the true value is 1. Summing five TD errors from
    # the same old value (step size 5 alpha) oscillated: 2.5, -1.25, 4.375, ...
    agent = make_agent(n_states=2, n_actions=1, alpha=0.5)
    values = []
    for step in range(5, 45, 5):
        transition(agent, [0] * 5, [0] * 5, [1.0] * 5, [1] * 5, [True] * 5, step=step)
        values.append(agent.q_table[0, 0])
    assert values[0] == pytest.approx(1 - 0.5**5)
    assert all(0 < a < b <= 1 for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(1.0, abs=1e-9)


def test_step_sizes_per_env_step_do_not_depend_on_num_envs():
    # The same 12 transitions as 12 single-env steps or as 3 steps of 4 sub-envs: same table, decay included.
    rng = np.random.default_rng(3)
    obs, actions = rng.integers(0, 3, 12), rng.integers(0, 2, 12)
    rewards, next_obs, terminated = rng.normal(size=12), rng.integers(0, 3, 12), rng.random(12) < 0.3
    one, four = (make_agent(n_states=3, alpha=0.7, alpha_decay=0.1, gamma=0.95) for _ in range(2))
    for t in range(12):
        transition(
            one,
            obs[t : t + 1],
            actions[t : t + 1],
            rewards[t : t + 1],
            next_obs[t : t + 1],
            terminated[t : t + 1],
            step=t + 1,
        )
    for t in range(0, 12, 4):
        part = slice(t, t + 4)
        transition(four, obs[part], actions[part], rewards[part], next_obs[part], terminated[part], step=t + 4)
    np.testing.assert_allclose(four.q_table, one.q_table, rtol=0, atol=1e-12)


def test_alpha_decays_hyperbolically_with_the_step():
    agent = make_agent(alpha=0.8, alpha_decay=0.01)
    metrics = transition(agent, [0], [0], [0.0], [1], [False], step=300)
    assert metrics["train/alpha"] == pytest.approx(0.8 / (1 + 0.01 * 300))
    assert make_agent(alpha=0.8).alpha(10**9) == 0.8  # no decay by default


def test_greedy_action_is_the_argmax_and_exploration_follows_epsilon():
    agent = make_agent(n_states=1, n_actions=4, epsilon=0.3)
    agent.q_table[0] = [0.0, 0.0, 5.0, 0.0]
    assert agent.act_greedy(np.array([0])).tolist() == [2]
    actions = agent.act(np.zeros(20_000, dtype=np.int64), 0, 0)
    assert np.mean(actions != 2) == pytest.approx(0.3 * 3 / 4, abs=0.015)


def test_ties_are_broken_at_random_while_training():
    agent = make_agent(n_states=1, n_actions=3, epsilon=0.0)
    counts = np.bincount(agent.act(np.zeros(3000, dtype=np.int64), 0, 0), minlength=3)
    assert counts.min() > 900  # an untouched table tries every action, not always the first


def test_checkpoint_is_the_table_as_a_tensor(tmp_path):
    from rlrun.checkpoints import save_checkpoint

    agent = make_agent(n_states=5, n_actions=3)
    agent.q_table[:] = np.arange(15).reshape(5, 3)
    save_checkpoint(tmp_path / "q.pt", {"config": {}, "agent": agent.state_dict()})
    state = load_checkpoint(tmp_path / "q.pt")["agent"]
    assert isinstance(state["q_table"], torch.Tensor) and state["q_table"].shape == (5, 3)
    restored = make_agent(n_states=5, n_actions=3)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored.q_table, agent.q_table)


def test_preset_composes_and_builds_for_a_discrete_observation_env():
    cfg = compose_cfg("agent=tabular_q", "env=gym", "env.id=FrozenLake-v1")
    validate(cfg)
    assert cfg.agent.name == "tabular_q" and cfg.agent.algo == "tabular_q"
    env = gym.make("FrozenLake-v1")
    agent = build_agent(cfg, env.observation_space, env.action_space, torch.device("cpu"))
    assert agent.q_table.shape == (16, 4)


@pytest.mark.parametrize(
    "override,key",
    [
        ("agent.alpha=0", "agent.alpha"),
        ("agent.alpha=1.5", "agent.alpha"),
        ("agent.alpha_decay=-1", "agent.alpha_decay"),
        ("agent.gamma=-0.1", "agent.gamma"),
        ("schedule.end=2", "schedule.end"),  # tabular Q takes its epsilon from the schedule group
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_cfg("agent=tabular_q", override))


def test_box_observations_are_a_clear_error(tmp_path):
    result = run_cli("agent=tabular_q", "env=cartpole", f"hydra.run.dir={tmp_path}")
    assert_clean_failure(result, r"agent=tabular_q needs a Discrete observation space", "CartPole-v1", "Taxi-v4")
    assert not list(tmp_path.glob("events.out.tfevents*")), "training must not have started"


@pytest.mark.learning
def test_default_tabular_q_learns_frozenlake_without_slip(tmp_path):
    cfg = compose_cfg(
        "agent=tabular_q",
        "env=gym",
        "env.id=FrozenLake-v1",
        "+env.kwargs.is_slippery=false",
        "total_steps=10000",
        "device=cpu",
        "seed=0",
    )
    result = train(cfg, tmp_path)
    assert result["final_eval_return"] == 1.0, result  # every greedy episode reaches the goal


@pytest.mark.learning
def test_default_tabular_q_learns_taxi(tmp_path):
    # Taxi-v3 is Taxi-v4 in Gymnasium 1.4; the defaults and the default 50k-step budget.
    result = train(compose_cfg("agent=tabular_q", "env=gym", "env.id=Taxi-v4", "device=cpu", "seed=0"), tmp_path)
    assert result["best_eval_return"] >= 7.0, result
    # 100 fresh greedy episodes from the final table: not just the 10 seeds used during training
    from rlrun.cli import run

    checkpoint = str(tmp_path / "checkpoints" / "last.pt")
    (tmp_path / "eval").mkdir()
    report = run(
        compose_cfg("mode=evaluate", f"checkpoint={checkpoint}", "eval.episodes=100", "seed=7"),
        tmp_path / "eval",
        ["mode=evaluate", f"checkpoint={checkpoint}", "eval.episodes=100", "seed=7"],
    )
    assert report["mean"] >= 7.0, report["mean"]
