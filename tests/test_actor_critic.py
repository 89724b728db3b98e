"""The actor-critic family (ppo, a2c): GAE and the losses against hand-computed values, truncation, normalisation
statistics through checkpoints and evaluation, bad values, and learning CartPole."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from rlrun.agents import ActorCriticAgent, build_agent
from rlrun.agents.actor_critic import explained_variance, generalized_advantages, policy_loss, value_loss
from rlrun.agents.running_stats import RunningMeanStd
from rlrun.checkpoints import load_checkpoint, save_checkpoint
from rlrun.config import ActorCriticConfig, validate
from rlrun.errors import ConfigError
from rlrun.evaluation import run_greedy_episodes
from rlrun.loop import train
from tests.conftest import compose_cfg, run_cli

SHORT_RUN = [
    "agent=ppo",
    "~tuned",
    "agent.n_steps=64",
    "agent.batch_size=32",
    "agent.n_epochs=2",
    "env.num_envs=2",
    "total_steps=768",
    "eval.every=256",
    "eval.episodes=2",
    "save_every=256",
    "log_every=64",
    "device=cpu",
    "seed=3",
]


# ----------------------------------------------------------------------------- GAE
def test_gae_matches_hand_computed_values():
    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.array([[0.5], [1.0], [1.5]])
    last_values = np.array([2.0])
    # gamma 0.9, lambda 0.8: deltas 1.4, 2.35, 3.3 (the last one bootstraps from V = 2 after the rollout)
    advantages, returns = generalized_advantages(rewards, values, np.zeros((3, 1)), last_values, 0.9, 0.8)
    np.testing.assert_allclose(advantages[:, 0], [1.4 + 0.72 * (2.35 + 0.72 * 3.3), 2.35 + 0.72 * 3.3, 3.3])
    np.testing.assert_allclose(returns, advantages + values)
    # the episode ends at step 1: step 1 neither bootstraps nor sees step 2; step 0 still sees step 1
    dones = np.array([[0.0], [1.0], [0.0]])
    advantages, _ = generalized_advantages(rewards, values, dones, last_values, 0.9, 0.8)
    np.testing.assert_allclose(advantages[:, 0], [1.4 + 0.72 * 1.0, 2.0 - 1.0, 3.3])


def brute_force_gae(rewards, values, dones, last_values, gamma, lam):
    """The definition: A_t = sum_k (gamma lambda)^k delta_{t+k}, up to and including the step where the episode ends."""
    steps, envs = rewards.shape
    next_values = np.vstack([values[1:], last_values[None]])
    deltas = rewards + gamma * (1 - dones) * next_values - values
    advantages = np.zeros_like(rewards)
    for env in range(envs):
        for t in range(steps):
            for k in range(steps - t):
                advantages[t, env] += (gamma * lam) ** k * deltas[t + k, env]
                if dones[t + k, env]:
                    break
    return advantages


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    steps=st.integers(1, 12),
    envs=st.integers(1, 3),
    gamma=st.sampled_from([0.0, 0.9, 0.99, 1.0]),
    lam=st.sampled_from([0.0, 0.5, 0.95, 1.0]),
)
def test_gae_matches_its_definition(data, steps, envs, gamma, lam):
    def draw(shape):
        size = int(np.prod(shape))
        return np.array(data.draw(st.lists(st.floats(-10, 10), min_size=size, max_size=size))).reshape(shape)

    rewards, values, last_values = draw((steps, envs)), draw((steps, envs)), draw((envs,))
    dones = np.array(
        data.draw(st.lists(st.booleans(), min_size=steps * envs, max_size=steps * envs)), dtype=float
    ).reshape(steps, envs)
    advantages, _ = generalized_advantages(rewards, values, dones, last_values, gamma, lam)
    np.testing.assert_allclose(
        advantages, brute_force_gae(rewards, values, dones, last_values, gamma, lam), rtol=1e-9, atol=1e-9
    )


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value():
    rewards, values = np.array([[1.0], [1.0], [1.0]]), np.array([[3.0], [2.0], [1.0]])
    _, returns = generalized_advantages(rewards, values, np.zeros((3, 1)), np.array([10.0]), 0.5, 1.0)
    np.testing.assert_allclose(returns[:, 0], [1 + 0.5 + 0.25 + 0.125 * 10, 1 + 0.5 + 0.25 * 10, 1 + 0.5 * 10])


# ----------------------------------------------------------------------------- losses
def test_clipped_surrogate_matches_hand_computed_values():
    ratios = torch.tensor([0.5, 1.0, 1.5, 0.5])
    advantages = torch.tensor([1.0, -1.0, 2.0, -1.0])
    old = torch.zeros(4)
    # min(r A, clip(r, 0.8, 1.2) A): 0.5 (unclipped is smaller), -1, 2.4 (clipped), -0.8 (clipped)
    loss = policy_loss(ratios.log(), old, advantages, clip_range=0.2)
    torch.testing.assert_close(loss, torch.tensor(-(0.5 - 1.0 + 2.4 - 0.8) / 4))
    # no clipping: the policy gradient -mean(A log pi)
    log_probs = torch.tensor([-0.1, -2.0, -0.5, -1.0])
    torch.testing.assert_close(
        policy_loss(log_probs, old, advantages, None), torch.tensor(-(-0.1 + 2.0 - 1.0 + 1.0) / 4)
    )


def test_clipped_surrogate_has_no_gradient_where_the_ratio_left_the_trust_region_in_the_advantage_s_direction():
    log_probs = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5])).requires_grad_()
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0])
    policy_loss(log_probs, torch.zeros(4), advantages, clip_range=0.2).backward()
    # ratio 1.5 with A > 0 and ratio 0.5 with A < 0 are clipped: flat; the other two still get pushed back
    assert log_probs.grad[0] == 0 and log_probs.grad[3] == 0
    assert log_probs.grad[1] != 0 and log_probs.grad[2] != 0


def test_value_loss_and_its_clipping():
    values, old, returns = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0]), torch.tensor([3.0, 1.0])
    torch.testing.assert_close(value_loss(values, old, returns, None), torch.tensor((1.0 + 1.0) / 2))
    # value 2 clipped to 1 + 0.5 = 1.5: error 1.5^2 = 2.25 is larger than the unclipped 1: kept (pessimistic)
    torch.testing.assert_close(value_loss(values, old, returns, 0.5), torch.tensor((2.25 + 1.0) / 2))


def test_explained_variance():
    targets = np.array([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(targets, targets) == 1.0
    assert explained_variance(np.full(4, targets.mean()), targets) == 0.0


def test_running_mean_std_matches_numpy_over_all_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 2)) for n in (1, 5, 17, 3)]
    stats = RunningMeanStd((2,))
    for batch in batches:
        stats.update(batch)
    everything = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean, everything.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(stats.var, everything.var(axis=0), rtol=1e-4)


def test_reward_scaling_divides_by_the_std_of_the_discounted_returns_seen():
    from rlrun.agents.running_stats import RewardScaler

    scaler = RewardScaler(gamma=0.5, clip=10.0)
    rewards = [
        (np.array([1.0, 2.0]), np.array([False, False])),
        (np.array([3.0, -1.0]), np.array([True, False])),
        (np.array([2.0, 0.5]), np.array([False, False])),
    ]
    seen, running = [], np.zeros(2)
    for r, done in rewards:
        running = 0.5 * running + r
        seen.extend(running)
        expected = np.clip(r / np.sqrt(np.var(seen) + 1e-8), -10, 10)
        np.testing.assert_allclose(scaler(r, done), expected, rtol=1e-3)
        running[done] = 0.0  # sub-env 0's return restarts after its episode ends
    tight = RewardScaler(gamma=0.5, clip=0.1)
    assert tight(np.array([1.0, 5.0]), np.zeros(2, bool)).tolist() == [0.1, 0.1]  # clipped


# ----------------------------------------------------------------------------- the agent
def make_agent(action_space, obs_dim=3, **overrides) -> ActorCriticAgent:
    cfg = ActorCriticConfig(**{"hidden_sizes": [16], **overrides})
    return ActorCriticAgent(cfg, (obs_dim,), action_space, torch.device("cpu"), seed=0)


def test_log_probs_and_entropy_match_torch_distributions():
    for space in (gym.spaces.Discrete(4), gym.spaces.Box(-1.0, 1.0, (2,))):
        agent = make_agent(space, init_log_std=-0.3)
        obs = torch.randn(6, 3)
        actions = torch.tensor([0, 1, 2, 3, 0, 1]) if agent.discrete else torch.randn(6, 2)
        log_probs, entropy, values = agent.evaluate_actions(obs, actions)
        out = agent.networks.policy(obs)
        if agent.discrete:
            reference = torch.distributions.Categorical(logits=out)
            torch.testing.assert_close(log_probs, reference.log_prob(actions))
            torch.testing.assert_close(entropy, reference.entropy())
        else:
            reference = torch.distributions.Normal(out, agent.networks.log_std.exp())
            torch.testing.assert_close(log_probs, reference.log_prob(actions).sum(dim=1))
            torch.testing.assert_close(entropy, reference.entropy().sum(dim=1))
        assert values.shape == (6,)


def test_acting_stores_the_log_prob_of_the_action_taken():
    for space in (gym.spaces.Discrete(3), gym.spaces.Box(-0.1, 0.1, (1,))):
        agent = make_agent(space, n_steps=4, init_log_std=1.0)  # std e: most Gaussian samples leave [-0.1, 0.1]
        obs = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
        env_actions = agent.act(obs, 0, 0)
        agent.observe(obs, env_actions, np.zeros(50), obs, np.zeros(50, bool), np.zeros(50, bool))
        stored = torch.as_tensor(agent.rollout.actions[0])
        log_probs, _, values = agent.evaluate_actions(torch.as_tensor(obs), stored)
        np.testing.assert_allclose(agent.rollout.log_probs[0], log_probs.detach().numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(agent.rollout.values[0], values.detach().numpy(), rtol=1e-5, atol=1e-6)
        if not agent.discrete:  # the env got clipped actions, the rollout the unclipped sample
            assert np.abs(env_actions).max() <= 0.1 and np.abs(stored.numpy()).max() > 0.1


def test_truncation_bootstraps_from_the_true_final_observation_and_termination_does_not():
    agent = make_agent(gym.spaces.Discrete(2), n_steps=2, gamma=0.5, gae_lambda=1.0)
    agent.values_of = lambda policy_obs: 10.0 * policy_obs[:, 0]  # V(s) = 10 s_0 for the bootstrap values
    obs = np.zeros((3, 3), dtype=np.float32)
    final_obs = np.array([[1.0, 0, 0], [1.0, 0, 0], [0.7, 0, 0]], dtype=np.float32)
    # sub-env 0 terminates, sub-env 1 is cut by the time limit, sub-env 2 goes on (its next obs is final_obs[2])
    agent.act(obs, 0, 0)
    agent.observe(obs, None, np.ones(3), final_obs, np.array([True, False, False]), np.array([False, True, False]))
    np.testing.assert_allclose(agent.rollout.rewards[0], [1.0, 1.0 + 0.5 * 10.0, 1.0])
    np.testing.assert_array_equal(agent.rollout.dones[0], [1, 1, 0])
    agent.act(final_obs, 2, 0)  # the next rollout row; its values come from the network
    agent.observe(final_obs, None, np.ones(3), final_obs, np.zeros(3, bool), np.zeros(3, bool))
    rollout = agent.rollout
    np.testing.assert_allclose(rollout.last_values, [10.0, 10.0, 7.0])
    _, returns = generalized_advantages(rollout.rewards, rollout.values, rollout.dones, rollout.last_values, 0.5, 1.0)
    # the terminated and the truncated episode differ by gamma V(final obs); the cut one equals the one going on
    assert returns[0, 0] == pytest.approx(1.0)
    assert returns[0, 1] == pytest.approx(6.0)
    assert returns[0, 2] == pytest.approx(1.0 + 0.5 * (1.0 + 0.5 * 7.0))


def test_a_truncation_that_is_also_a_termination_does_not_bootstrap():
    agent = make_agent(gym.spaces.Discrete(2), n_steps=4)
    agent.values_of = lambda policy_obs: np.full(len(policy_obs), 100.0)
    obs = np.zeros((1, 3), dtype=np.float32)
    agent.act(obs, 0, 0)
    agent.observe(obs, None, np.ones(1), obs, np.array([True]), np.array([True]))
    assert agent.rollout.rewards[0, 0] == 1.0


def test_update_waits_for_the_whole_rollout_and_runs_epochs_times_minibatches_steps():
    agent = make_agent(gym.spaces.Discrete(2), n_steps=4, batch_size=4, n_epochs=3)
    steps = []
    agent.optimizer.step = lambda *args, **kwargs: steps.append(1)
    obs = np.zeros((2, 3), dtype=np.float32)
    for t in range(4):
        agent.act(obs, t, 0)
        agent.observe(obs, None, np.ones(2), obs, np.zeros(2, bool), np.zeros(2, bool))
        metrics = agent.update(2 * (t + 1), 0)
        assert (metrics == {}) == (t < 3)
    assert len(steps) == 3 * 2  # 8 transitions in minibatches of 4, three epochs
    assert {
        "losses/policy_loss",
        "losses/value_loss",
        "losses/entropy",
        "losses/approx_kl",
        "losses/clip_fraction",
        "losses/explained_variance",
    } <= set(metrics)
    assert agent.rollout.position == 0


def test_target_kl_stops_the_epochs_early():
    agent = make_agent(gym.spaces.Discrete(2), n_steps=8, batch_size=2, n_epochs=50, lr=0.05, target_kl=1e-6)
    rng = np.random.default_rng(0)
    for t in range(8):
        obs = rng.normal(size=(1, 3)).astype(np.float32)
        agent.act(obs, t, 0)
        agent.observe(obs, None, rng.normal(size=1), obs, np.zeros(1, bool), np.zeros(1, bool))
    metrics = agent.update(8, 0)
    assert metrics["train/epochs"] < 50


def test_a2c_preset_is_one_unclipped_step_over_the_whole_rollout():
    cfg = compose_cfg("agent=a2c", "~tuned")
    validate(cfg)
    assert cfg.agent.algo == "actor_critic" and cfg.agent.clip_range is None
    assert cfg.agent.n_epochs == 1 and cfg.agent.batch_size is None
    env = gym.make("CartPole-v1")
    agent = build_agent(cfg, env.observation_space, env.action_space, torch.device("cpu"))
    steps = []
    agent.optimizer.step = lambda *args, **kwargs: steps.append(1)
    obs = np.zeros((4, 4), dtype=np.float32)
    for t in range(cfg.agent.n_steps):
        agent.act(obs, t, 0)
        agent.observe(obs, None, np.ones(4), obs, np.zeros(4, bool), np.zeros(4, bool))
    assert agent.update(4 * cfg.agent.n_steps, 0)["losses/clip_fraction"] == 0.0 and steps == [1]


def test_learning_rate_and_clip_range_anneal_from_the_rollout_start():
    cfg = compose_cfg(
        "agent=ppo",
        "~tuned",
        "agent.lr=1e-3",
        "agent.lr_end=0",
        "agent.n_steps=8",
        "agent.batch_size=8",
        "agent.n_epochs=1",
        "total_steps=32",
        "agent.clip_range_end=0",
    )
    validate(cfg)
    env = gym.make("CartPole-v1")
    agent = build_agent(cfg, env.observation_space, env.action_space, torch.device("cpu"))
    obs = np.zeros((1, 4), dtype=np.float32)
    rates, clip_ranges = [], []
    for t in range(32):
        agent.act(obs, t, 0)
        agent.observe(obs, None, np.ones(1), obs, np.zeros(1, bool), np.zeros(1, bool))
        metrics = agent.update(t + 1, 0)
        if metrics:
            rates.append(metrics["train/lr"])
            clip_ranges.append(metrics["train/clip_range"])
    assert rates == pytest.approx([1e-3, 0.75e-3, 0.5e-3, 0.25e-3])
    assert clip_ranges == pytest.approx([0.2, 0.15, 0.1, 0.05])


def test_state_dict_round_trips_through_a_weights_only_checkpoint(tmp_path):
    space = gym.spaces.Box(-1.0, 1.0, (2,))
    agent = make_agent(space, n_steps=8, normalize_obs=True, normalize_reward=True)
    rng = np.random.default_rng(0)
    for t in range(3):
        obs = rng.normal(size=(2, 3)).astype(np.float32)
        agent.act(obs, t, 0)
        agent.observe(obs, None, rng.normal(size=2), obs, np.zeros(2, bool), np.zeros(2, bool))
    save_checkpoint(tmp_path / "a.pt", {"config": {}, "agent": agent.state_dict()})
    restored = make_agent(space, n_steps=8, normalize_obs=True, normalize_reward=True)
    restored.load_state_dict(load_checkpoint(tmp_path / "a.pt")["agent"])
    probe = rng.normal(size=(16, 3)).astype(np.float32)
    np.testing.assert_array_equal(restored.act_greedy(probe), agent.act_greedy(probe))
    np.testing.assert_array_equal(restored.act(probe[:2], 3, 0), agent.act(probe[:2], 3, 0))  # same RNG, same stats
    assert restored.rollout.position == 3
    np.testing.assert_array_equal(restored.rollout.rewards[:3], agent.rollout.rewards[:3])
    np.testing.assert_array_equal(restored.reward_scaler.returns, agent.reward_scaler.returns)


# ----------------------------------------------------------------------------- normalisation through the run
def test_normalisation_statistics_are_saved_frozen_in_evaluation_and_applied_by_mode_evaluate(tmp_path, monkeypatch):
    from rlrun.evaluation import evaluate

    overrides = [*SHORT_RUN, "agent.normalize_obs=true", "agent.normalize_reward=true"]
    train(compose_cfg(*overrides), tmp_path / "run")
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    saved = load_checkpoint(best)["agent"]
    assert saved["obs_normalizer"]["count"] > 1 and saved["reward_scaler"]["count"] > 1
    assert not torch.equal(saved["obs_normalizer"]["var"], torch.ones(4))

    loaded = []
    load = ActorCriticAgent.load_state_dict
    monkeypatch.setattr(
        ActorCriticAgent, "load_state_dict", lambda self, state: (loaded.append(self), load(self, state))[1]
    )
    (tmp_path / "eval").mkdir()
    report = evaluate(
        compose_cfg("mode=evaluate", f"checkpoint={best}", "eval.episodes=3"),
        tmp_path / "eval",
        ["mode", "checkpoint", "eval.episodes"],
    )
    (agent,) = loaded
    stats = agent.obs_normalizer.stats
    np.testing.assert_array_equal(stats.mean, saved["obs_normalizer"]["mean"].numpy())  # applied ...
    assert stats.count == saved["obs_normalizer"]["count"]  # ... and frozen: three episodes later, unchanged
    # the same greedy episodes as the agent rebuilt here with its statistics; without them it plays another policy
    env = gym.make("CartPole-v1")
    again = run_greedy_episodes(agent, env, report["seeds"])
    assert again["returns"] == report["returns"]
    probe = np.random.default_rng(0).normal(0, 3, size=(256, 4)).astype(np.float32)
    cfg = compose_cfg(*overrides)
    bare = build_agent(cfg, env.observation_space, env.action_space, torch.device("cpu"))
    bare.networks.load_state_dict(saved["networks"])  # the weights without the statistics: the classic silent bug
    assert (bare.act_greedy(probe) != agent.act_greedy(probe)).any()


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "override,key",
    [
        ("agent.batch_size=30", "agent.batch_size"),  # does not divide 64 x 2
        ("agent.clip_range=0", "agent.clip_range"),
        ("agent.clip_range=-0.2", "agent.clip_range"),
        ("agent.clip_range_vf=0", "agent.clip_range_vf"),
        ("agent.clip_range_end=-0.1", "agent.clip_range_end"),
        ("agent.clip_range=null agent.clip_range_end=0", "agent.clip_range_end"),
        ("agent.gae_lambda=1.5", "agent.gae_lambda"),
        ("agent.gae_lambda=-0.1", "agent.gae_lambda"),
        ("agent.gamma=1.1", "agent.gamma"),
        ("agent.n_steps=0", "agent.n_steps"),
        ("agent.n_epochs=0", "agent.n_epochs"),
        ("agent.lr=0", "agent.lr"),
        ("agent.lr_end=-1e-4", "agent.lr_end"),
        ("agent.ent_coef=-0.01", "agent.ent_coef"),
        ("agent.vf_coef=0", "agent.vf_coef"),
        ("agent.max_grad_norm=0", "agent.max_grad_norm"),
        ("agent.target_kl=0", "agent.target_kl"),
        ("agent.activation=gelu", "agent.activation"),
        ("agent.optimizer=sgd", "agent.optimizer"),
        ("agent.clip_obs=0", "agent.clip_obs"),
        ("agent.hidden_sizes=[]", "agent.hidden_sizes"),
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_cfg("agent=ppo", "~tuned", "agent.n_steps=64", "env.num_envs=2", *override.split()))


def test_a_batch_size_that_does_not_divide_the_rollout_says_what_would():
    with pytest.raises(ConfigError, match=r"n_steps=64 x env\.num_envs=2 = 128 .*divisor of 128"):
        validate(compose_cfg("agent=ppo", "~tuned", "agent.n_steps=64", "env.num_envs=2", "agent.batch_size=48"))
    validate(compose_cfg("agent=ppo", "~tuned", "agent.n_steps=64", "env.num_envs=2", "agent.batch_size=null"))


def test_schedule_and_buffer_do_not_apply():
    validate(compose_cfg("agent=ppo", "schedule.start=5", "buffer.capacity=0"))


# ----------------------------------------------------------------------------- through the loop
def test_short_run_on_a_continuous_env_logs_the_family_s_scalars(tmp_path):
    from tests.test_reinforce import read_scalars

    result = train(compose_cfg(*SHORT_RUN, "env=pendulum", "agent.normalize_obs=true"), tmp_path)
    assert np.isfinite(result["final_eval_return"])
    assert {
        "losses/policy_loss",
        "losses/value_loss",
        "losses/entropy",
        "losses/approx_kl",
        "losses/clip_fraction",
        "losses/explained_variance",
        "train/action_std",
    } <= read_scalars(tmp_path)


@pytest.mark.learning
def test_ppo_solves_cartpole(tmp_path):
    # `rlrun agent=ppo seed=0`: conf/tuned/cartpole_ppo.yaml, only the device pinned; stopping at the first greedy
    # evaluation of 20 episodes at 475 keeps it short (the steps before the stop are those of the full run).
    cfg = compose_cfg("agent=ppo", "device=cpu", "seed=0", "eval.episodes=20", "stop_at_return=475")
    assert cfg.tuned_settings == "cartpole_ppo" and cfg.total_steps == 100_000
    result = train(cfg, tmp_path)
    assert result["best_eval_return"] >= 475.0 and result["solved_at_step"] <= 50_000, result


@pytest.mark.learning
def test_a2c_solves_cartpole(tmp_path):
    # `rlrun agent=a2c seed=0` (conf/tuned/cartpole_a2c.yaml): seed 0 of the learning table first reached 475 at
    # 20,000 env steps; the run stops at that evaluation
    cfg = compose_cfg("agent=a2c", "device=cpu", "seed=0", "eval.episodes=20", "stop_at_return=475")
    assert cfg.tuned_settings == "cartpole_a2c" and cfg.agent.n_epochs == 1 and cfg.agent.clip_range is None
    result = train(cfg, tmp_path)
    assert result["best_eval_return"] >= 475.0 and result["solved_at_step"] <= 40_000, result


@pytest.mark.learning
def test_ppo_solves_acrobot(tmp_path):
    # `rlrun agent=ppo env=acrobot seed=0` (conf/tuned/acrobot_ppo.yaml, 16 sub-envs, normalisation on): seed 0 of
    # the learning table first reached -100 at 20,000 env steps; the run stops at that evaluation
    cfg = compose_cfg("agent=ppo", "env=acrobot", "device=cpu", "seed=0", "eval.episodes=20", "stop_at_return=-100")
    assert cfg.tuned_settings == "acrobot_ppo" and cfg.agent.normalize_obs
    result = train(cfg, tmp_path)
    assert result["best_eval_return"] >= -100.0 and result["solved_at_step"] <= 40_000, result


# ----------------------------------------------------------------------------- found by the review
def fill_rollout_with_nan_rewards(agent):
    obs = np.zeros((2, 3), dtype=np.float32)
    for t in range(4):
        agent.act(obs, t, 0)
        agent.observe(obs, None, np.full(2, np.nan), obs, np.zeros(2, bool), np.zeros(2, bool))
    return [param.detach().clone() for param in agent.parameters]


def test_a_non_finite_loss_stops_the_run_or_is_skipped_as_train_nan_policy_says():
    from rlrun.errors import TrainingDiverged

    agent = make_agent(gym.spaces.Discrete(2), n_steps=4, batch_size=4, n_epochs=2)
    fill_rollout_with_nan_rewards(agent)
    with pytest.raises(TrainingDiverged, match="not finite"):
        agent.update(8, 0)
    skipping = make_agent(gym.spaces.Discrete(2), n_steps=4, batch_size=4, n_epochs=2)
    skipping.skip_nonfinite_loss = True
    before = fill_rollout_with_nan_rewards(skipping)
    metrics = skipping.update(8, 0)
    assert metrics["train/skipped_batches"] == 4  # 2 minibatches x 2 epochs, none stepped
    assert all(torch.equal(old, new) for old, new in zip(before, skipping.parameters))
    # nothing was trained: no loss figures (not zeros), and no epoch counted
    assert not [key for key in metrics if key.startswith("losses/") and key != "losses/explained_variance"]
    assert metrics["train/epochs"] == 0


def test_a_fresh_run_that_would_train_past_an_anneal_to_zero_is_refused(tmp_path):
    result = run_cli(
        "agent=ppo", "env=cartpole", "total_steps=100000", "agent.lr_end=0", "agent.lr_decay_steps=50000", cwd=tmp_path
    )
    assert result.returncode != 0
    said = "agent.lr_decay_steps=50000 is not allowed with agent.lr_end=0 and agent.clip_range_end=0 and total_steps"
    assert said in result.stderr  # cartpole_ppo anneals the clip range to 0 as well
    assert not list(tmp_path.glob("outputs/*/*/events.out.tfevents*")), "refused before anything was built"
    # the rule binds new runs only: a run saved before it existed (lr_decay_steps below its total_steps) is still
    # evaluated, and continued within its own total_steps (the resume's own check, below, decides past them)
    from rlrun.config import validate

    saved = compose_cfg("agent=ppo", "env=cartpole")
    saved.total_steps, saved.agent.lr_decay_steps = 100_000, 50_000
    with pytest.raises(ConfigError, match="is not allowed with agent.lr_end=0"):
        validate(saved)
    validate(saved, resumed=True)
    saved.mode = "evaluate"
    validate(saved)


@pytest.mark.parametrize(
    "space, message",
    [
        (gym.spaces.Box(-1.0, 1.0, shape=(2, 2), dtype=np.float32), "shape \\(2, 2\\)"),
        (gym.spaces.Discrete(3, start=-1), "start at -1"),
    ],
)
def test_action_spaces_the_policy_cannot_serve_are_refused_before_training(space, message):
    cfg = compose_cfg(*SHORT_RUN)
    obs_space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
    with pytest.raises(ConfigError, match=message):
        build_agent(cfg, obs_space, space, torch.device("cpu"))


def test_a_resume_past_an_anneal_that_ends_at_zero_is_refused(tmp_path):
    from rlrun.loop import resume

    run_dir = tmp_path / "run"
    overrides = [*SHORT_RUN, "agent.lr_end=0"]
    train(compose_cfg(*overrides), run_dir)
    with pytest.raises(ConfigError, match="past the end of this run's anneal"):
        resume(compose_cfg(f"resume={run_dir}", "total_steps=1536"), ["resume", "total_steps"])


# ----------------------------------------------------------------------------- found by the second review
def test_mode_evaluate_refuses_to_rebuild_the_agent_from_the_command_line(tmp_path):
    # `rlrun agent=ppo mode=evaluate checkpoint=...` replaced the checkpoint's agent node by a fresh preset, whose
    # normalize_obs=false dropped the saved statistics: a plausible, wrong score and no warning
    from rlrun.evaluation import evaluate

    train(compose_cfg(*SHORT_RUN, "agent.normalize_obs=true"), tmp_path / "run")
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    (tmp_path / "eval").mkdir()
    for override in (["agent=ppo"], ["agent.lr=1e-3"], ["buffer=uniform"]):
        with pytest.raises(ConfigError, match=override[0].split("=")[0]) as error:
            evaluate(
                compose_cfg("mode=evaluate", f"checkpoint={best}", *override),
                tmp_path / "eval",
                ["mode", "checkpoint", override[0].split("=")[0]],
            )
        assert "the checkpoint's" in str(error.value)


@pytest.mark.parametrize("saved,built", [(True, False), (False, True)])
def test_loading_a_checkpoint_with_other_normalisation_settings_is_a_config_error(saved, built):
    space = gym.spaces.Discrete(2)
    state = make_agent(space, n_steps=4, normalize_obs=saved).state_dict()
    with pytest.raises(ConfigError, match="agent.normalize_obs"):
        make_agent(space, n_steps=4, normalize_obs=built).load_state_dict(state)


def test_a_checkpoint_of_the_unfused_optimizer_resumes_on_fused_adam():
    space = gym.spaces.Discrete(2)
    state = make_agent(space, n_steps=4).state_dict()
    for group in state["optimizer"]["param_groups"]:
        group["fused"] = None  # what an optimizer built without fused=True saved
    restored = make_agent(space, n_steps=4)
    restored.load_state_dict(state)
    assert all(group["fused"] for group in restored.optimizer.param_groups)


def act_both_ways(agent, obs):
    """The agent's sampled and greedy actions through NumPy and, from the same generator state, through torch:
    asserts they agree up to float32 rounding, returns the greedy actions."""
    state = agent.rng.bit_generator.state
    numpy_actions, numpy_pending = agent.act(obs, 0, 0), agent.pending
    numpy_greedy = agent.act_greedy(obs)
    agent.rng.bit_generator.state = state
    saved, agent.numpy_policy = agent.numpy_policy, None  # numpy_pays_for() is False: the torch path
    torch_actions, torch_pending = agent.act(obs, 0, 0), agent.pending
    torch_greedy = agent.act_greedy(obs)
    agent.numpy_policy = saved
    np.testing.assert_allclose(numpy_actions, torch_actions, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(numpy_greedy, torch_greedy, rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(numpy_pending[2:], torch_pending[2:]):  # log-probs, values
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    return numpy_greedy


def test_numpy_acting_equals_the_torch_path_and_follows_weight_updates():
    """act() and act_greedy() on the CPU run through NumPy views of the MLPs (rlrun.networks.NumpyMLP): the same
    actions, log-probs and values as the modules up to float32 rounding, also after the weights change in place."""
    for space in (gym.spaces.Discrete(4), gym.spaces.Box(-1.0, 1.0, (2,))):
        agent = make_agent(space, n_steps=4, activation="relu")
        assert agent.numpy_policy is not None and agent.numpy_pays_for(50)
        obs = np.random.default_rng(2).normal(size=(50, 3)).astype(np.float32)
        before = act_both_ways(agent, obs)
        with torch.no_grad():  # an in-place change of every weight, as an optimizer step or load_state_dict makes
            for param in agent.networks.parameters():
                param.add_(torch.randn_like(param))
        after = act_both_ways(agent, obs)
        assert not np.array_equal(before, after)  # the views saw the change


def test_rmsprop_is_sb3s_and_its_state_round_trips():
    agent = make_agent(gym.spaces.Discrete(2), n_steps=4, batch_size=None, n_epochs=1, optimizer="rmsprop")
    assert isinstance(agent.optimizer, torch.optim.RMSprop)
    group = agent.optimizer.param_groups[0]
    assert (group["alpha"], group["eps"], group["momentum"], group["centered"]) == (0.99, 1e-5, 0, False)
    obs = np.random.default_rng(3).normal(size=(2, 3)).astype(np.float32)
    for _ in range(4):
        actions = agent.act(obs, 0, 0)
        agent.observe(obs, actions, np.ones(2), obs, np.zeros(2, bool), np.zeros(2, bool))
    before = [param.detach().clone() for param in agent.parameters]
    agent.update(8, 0)
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.parameters))  # it stepped
    twin = make_agent(gym.spaces.Discrete(2), n_steps=4, batch_size=None, n_epochs=1, optimizer="rmsprop")
    twin.load_state_dict(agent.state_dict())
    saved = agent.optimizer.state_dict()["state"]
    loaded = twin.optimizer.state_dict()["state"]
    assert saved.keys() == loaded.keys() and all(
        torch.equal(saved[k]["square_avg"], loaded[k]["square_avg"]) for k in saved
    )


def test_a_config_saved_before_agent_optimizer_existed_validates_and_builds_adam():
    """Checkpoints keep their config as a plain dict: runs saved before the key existed resume and evaluate."""
    saved = OmegaConf.to_container(compose_cfg("agent=a2c", "env=cartpole", "device=cpu"), resolve=True)
    del saved["agent"]["optimizer"]
    cfg = OmegaConf.create(saved)
    validate(cfg)
    agent = build_agent(cfg, gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), torch.device("cpu"))
    assert isinstance(agent.optimizer, torch.optim.Adam)
