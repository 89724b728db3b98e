"""DQN targets on hand-computed batches, terminal vs truncated bootstrapping, and the dueling head."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from rlrun.agents.dqn import td_targets
from rlrun.config import DQNConfig, target_update_interval
from rlrun.networks import QNetwork


class FixedQ(nn.Module):
    """Returns a fixed Q-table row per observation id (obs[:, 0])."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.tensor(table, dtype=torch.float32)

    def forward(self, obs):
        return self.table[obs[:, 0].long()]


# next-state Q-values: online prefers action 0 in state 0, target prefers action 1.
ONLINE = FixedQ([[5.0, 1.0], [0.0, 2.0]])
TARGET = FixedQ([[3.0, 4.0], [7.0, 6.0]])
REWARDS = torch.tensor([1.0, 1.0])
NEXT_OBS = torch.tensor([[0.0], [1.0]])
NOT_TERMINAL = torch.tensor([0.0, 0.0])


def test_vanilla_target_takes_the_target_nets_max():
    targets = td_targets(REWARDS, NEXT_OBS, NOT_TERMINAL, ONLINE, TARGET, gamma=0.5, double=False)
    # state 0: max(3, 4) = 4 -> 1 + 0.5*4 = 3; state 1: max(7, 6) = 7 -> 1 + 3.5 = 4.5
    torch.testing.assert_close(targets, torch.tensor([3.0, 4.5]))


def test_double_target_values_the_online_nets_choice_with_the_target_net():
    targets = td_targets(REWARDS, NEXT_OBS, NOT_TERMINAL, ONLINE, TARGET, gamma=0.5, double=True)
    # state 0: online argmax 0 -> target 3 -> 2.5; state 1: online argmax 1 -> target 6 -> 4.0
    torch.testing.assert_close(targets, torch.tensor([2.5, 4.0]))


def test_termination_stops_bootstrapping():
    terminated = torch.tensor([1.0, 0.0])
    targets = td_targets(REWARDS, NEXT_OBS, terminated, ONLINE, TARGET, gamma=0.5, double=False)
    torch.testing.assert_close(targets, torch.tensor([1.0, 4.5]))


def test_truncated_transition_still_bootstraps_in_the_loop(tmp_path):
    """A time-limit truncation is stored as non-terminal, with the true final observation as next_obs."""
    from rlrun.loop import Trainer
    from tests.conftest import compose_cfg

    cfg = compose_cfg("env.max_episode_steps=5", "agent=random", "total_steps=20", "eval.episodes=1", "device=cpu")
    trainer = Trainer(cfg, tmp_path)
    stored = []
    trainer.agent.observe = lambda obs, a, r, next_obs, terminated, truncated: stored.append(
        (obs.copy(), next_obs.copy(), terminated.copy(), truncated.copy())
    )
    trainer.run()
    truncations = [s for s in stored if s[3][0] and not s[2][0]]
    assert len(truncations) >= 3  # random CartPole rarely falls within 5 steps
    for i, (_obs, next_obs, terminated, truncated) in enumerate(stored[:-1]):
        if truncated[0] or terminated[0]:
            # next_obs is the final observation, not the first observation of the next episode
            assert not np.allclose(next_obs, stored[i + 1][0])
        else:
            np.testing.assert_array_equal(next_obs, stored[i + 1][0])


def test_dueling_head_is_value_plus_centred_advantage():
    torch.manual_seed(0)
    net = QNetwork(obs_dim=3, n_actions=4, hidden_sizes=[8], dueling=True)
    obs = torch.randn(5, 3)
    features = net.trunk(obs)
    value, advantage = net.value(features), net.advantage(features)
    torch.testing.assert_close(net(obs), value + advantage - advantage.mean(dim=1, keepdim=True))
    # centring: the mean over actions of Q equals V
    torch.testing.assert_close(net(obs).mean(dim=1, keepdim=True), value)
    assert net(obs).shape == (5, 4)


@pytest.mark.parametrize(
    "preset,double,dueling", [("dqn", False, False), ("double_dqn", True, False), ("dueling_dqn", False, True)]
)
def test_presets_only_flip_switches(preset, double, dueling):
    from rlrun.agents import DQNAgent, build_agent
    from rlrun.envs import make_env
    from tests.conftest import compose_cfg

    cfg = compose_cfg(f"agent={preset}", "device=cpu")
    env = make_env(cfg.env)
    agent = build_agent(cfg, env.observation_space, env.action_space, torch.device("cpu"))
    assert isinstance(agent, DQNAgent)
    assert agent.cfg.double is double and agent.online.dueling is dueling


def test_soft_update_moves_target_by_tau():
    from rlrun.agents import build_agent
    from rlrun.envs import make_env
    from tests.conftest import compose_cfg

    cfg = compose_cfg("agent.target_update=soft", "agent.tau=0.25", "device=cpu")
    env = make_env(cfg.env)
    agent = build_agent(cfg, env.observation_space, env.action_space, torch.device("cpu"))
    with torch.no_grad():
        for p in agent.online.parameters():
            p.add_(1.0)
    before = [p.clone() for p in agent.target.parameters()]
    agent.update_target()
    for old, new, online in zip(before, agent.target.parameters(), agent.online.parameters()):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * online)


def test_learning_rate_anneals_linearly_to_lr_end_then_stays():
    from rlrun.agents import build_agent
    from rlrun.envs import make_env
    from tests.conftest import compose_cfg

    cfg = compose_cfg(
        "~tuned",
        "device=cpu",
        "agent.lr=1e-3",
        "agent.lr_end=2e-4",
        "agent.lr_decay_steps=1000",
        "agent.learning_starts=0",
        "agent.batch_size=4",
        "total_steps=50000",
    )
    env = make_env(cfg.env)
    agent = build_agent(cfg, env.observation_space, env.action_space, torch.device("cpu"))
    obs, _ = env.reset(seed=0)
    for _ in range(8):
        action = int(agent.act(obs[None], 0, 0)[0])
        next_obs, reward, terminated, truncated, _ = env.step(action)
        agent.observe(
            obs[None],
            np.array([action]),
            np.array([reward]),
            next_obs[None],
            np.array([terminated]),
            np.array([truncated]),
        )
        obs = next_obs
    for step, expected in [(4, 1e-3 - 8e-4 * 0.004), (500, 6e-4), (1000, 2e-4), (4000, 2e-4)]:
        metrics = agent.update(step, 0)
        assert metrics["train/lr"] == pytest.approx(expected)
        assert [group["lr"] for group in agent.optimizer.param_groups] == [pytest.approx(expected)]
    untouched = build_agent(
        compose_cfg("~tuned", "device=cpu"), env.observation_space, env.action_space, torch.device("cpu")
    )
    assert untouched.learning_rate is None and untouched.optimizer.param_groups[0]["lr"] == 1e-3


def make_dqn_agent(n_actions: int = 4, seed: int = 0):
    from rlrun.agents.dqn import DQNAgent
    from rlrun.buffers import ReplayBuffer
    from rlrun.config import DQNConfig

    buffer = ReplayBuffer(100, (3,), np.dtype(np.float32), 8, torch.device("cpu"), seed)
    return DQNAgent(
        DQNConfig(hidden_sizes=[16]),
        (3,),
        n_actions,
        buffer,
        lambda step, episode: step / 1000,
        torch.device("cpu"),
        seed,
    )


@pytest.mark.parametrize("epsilon_step", [0, 250, 1000])
def test_epsilon_greedy_action_frequencies_match_closed_form(epsilon_step):
    """P(a) = epsilon / n + (1 - epsilon) [a = greedy], from one uniform draw per step."""
    agent, n = make_dqn_agent(n_actions=4), 4
    epsilon = epsilon_step / 1000
    obs = np.zeros((1, 3), dtype=np.float32)
    greedy = int(agent.act_greedy(obs)[0])
    draws = 40_000
    counts = np.bincount([int(agent.act(obs, epsilon_step, 0)[0]) for _ in range(draws)], minlength=n)
    expected = np.full(n, epsilon / n)
    expected[greedy] += 1 - epsilon
    # 5 binomial standard deviations
    assert np.all(np.abs(counts / draws - expected) <= 5 * np.sqrt(expected * (1 - expected) / draws) + 1e-12)
    assert agent.current_epsilon == epsilon


def test_epsilon_greedy_over_sub_envs_explores_each_independently():
    agent = make_dqn_agent(n_actions=3)
    obs = np.zeros((8, 3), dtype=np.float32)
    greedy = agent.act_greedy(obs)
    actions = np.stack([agent.act(obs, 500, 0) for _ in range(3000)])
    assert actions.shape == (3000, 8) and actions.dtype == np.int64
    explored_share = (actions != greedy).mean(axis=0)  # epsilon 0.5: 2/3 of explorations pick another action
    np.testing.assert_allclose(explored_share, 0.5 * 2 / 3, atol=0.04)


def test_dqn_acts_greedily_through_numpy_on_the_cpu_and_torch_elsewhere():
    agent = make_dqn_agent()
    assert agent.numpy_greedy is not None
    obs = np.random.default_rng(0).standard_normal((200, 3)).astype(np.float32)
    with torch.no_grad():
        expected = agent.online(torch.from_numpy(obs)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(agent.act_greedy(obs), expected)
    agent.numpy_greedy = None  # the torch path, as on a GPU
    np.testing.assert_array_equal(agent.act_greedy(obs), expected)


# ----------------------------------------------------------------------------- updates per env step
def update_events(tmp_path, num_envs, *overrides):
    """The gradient steps ("learn") and target updates ("target") of a short run, in the order they ran."""
    from rlrun.loop import Trainer
    from tests.conftest import TINY_RUN, compose_cfg

    # ~tuned: the counts below are for the group defaults (one gradient step per update)
    cfg = compose_cfg(
        *TINY_RUN,
        "~tuned",
        f"env.num_envs={num_envs}",
        "total_steps=800",
        "eval.every=100000",
        "save_every=100000",
        *overrides,
    )
    trainer = Trainer(cfg, tmp_path / f"envs{num_envs}")
    agent, events = trainer.agent, []
    learn, update_target = agent.learn, agent.update_target

    def counted_learn(batch):
        events.append("learn")
        if agent.learning_rate is not None:  # agent.lr_end: the rate each gradient step ran with
            events.append(f"lr={agent.optimizer.param_groups[0]['lr']:.9g}")
        return learn(batch)

    def counted_update_target():
        events.append("target")
        update_target()

    agent.learn, agent.update_target = counted_learn, counted_update_target
    trainer.run()
    return events


@pytest.mark.parametrize(
    "overrides,learns,target_updates",
    [
        # learning_starts=100, 800 env steps, train_freq 4: updates at env steps 100, 104, ..., 800
        (["agent.target_update=soft"], 176, 176),  # soft default: one Polyak step per update
        (["agent.target_update=soft", "agent.target_update_every=1", "agent.tau=0.5"], 176, 701),
        (["agent.target_update=hard", "agent.target_update_every=100"], 176, 8),
        (["agent.target_update=hard"], 176, 1),  # hard default: every 500 env steps
        (["agent.lr_end=1e-4"], 176, 1),  # and each gradient step's learning rate is that of its own env step
    ],
)
def test_gradient_steps_and_target_updates_per_env_step_do_not_depend_on_num_envs(
    tmp_path, overrides, learns, target_updates
):
    single = update_events(tmp_path, 1, *overrides)
    assert single.count("learn") == learns and single.count("target") == target_updates
    for num_envs in (4, 8):  # 8 sub-envs: two updates fall due within one loop iteration
        assert update_events(tmp_path, num_envs, *overrides) == single, num_envs  # same steps, same order


def test_soft_default_moves_the_target_most_of_the_way_within_a_run():
    cfg = DQNConfig(target_update="soft")
    agent_every = target_update_interval(cfg)
    assert agent_every == cfg.train_freq  # every update, as Polyak averaging is meant
    updates_in_50k = 50_000 // agent_every
    assert 1 - (1 - cfg.tau) ** updates_in_50k > 0.999
    assert target_update_interval(DQNConfig(target_update="hard")) == 500
    assert target_update_interval(DQNConfig(target_update="soft", target_update_every=7)) == 7


# ----------------------------------------------------------------------------- image layout
@pytest.mark.parametrize(
    "overrides,instead",
    [
        (["env=gym", "env.id=CarRacing-v3", "+env.kwargs.continuous=false"], r"\(96, 96, 3\).*vector observations"),
        (["env=gym", "env.id=ALE/Breakout-v5"], r"\(210, 160, 3\).*env=atari env\.id=ALE/Breakout-v5"),
    ],
    ids=["car_racing", "raw_ale"],
)
def test_images_in_gymnasiums_height_width_channels_layout_are_refused_before_training(tmp_path, overrides, instead):
    from rlrun.errors import ConfigError
    from rlrun.loop import Trainer
    from tests.conftest import compose_cfg

    pytest.importorskip("ale_py" if "ALE" in overrides[1] else "Box2D")
    with pytest.raises(ConfigError, match=r"(?s)env\.id=\S+ gives images of shape " + instead) as error:
        Trainer(compose_cfg(*overrides, "device=cpu"), tmp_path)
    assert "(height, width, channels)" in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


def test_a_non_finite_loss_is_looked_for_on_logging_steps_and_never_checkpointed(tmp_path, monkeypatch):
    """No device sync per gradient step: the loss is looked at on the steps that log (here every 500) and before
    any checkpoint (here every 100), so last.pt is the one before the loss went non-finite."""
    from rlrun.checkpoints import load_checkpoint
    from rlrun.errors import TrainingDiverged
    from rlrun.loop import Trainer
    from tests.conftest import TINY_RUN, compose_cfg, poison_td_loss

    trainer = Trainer(compose_cfg(*TINY_RUN, "total_steps=900", "save_every=100", "log_every=500"), tmp_path)
    poison_td_loss(monkeypatch, lambda: trainer.step > 450)
    with pytest.raises(TrainingDiverged, match=r"diverged at env step 500: a TD loss between env steps 400 and 500"):
        trainer.run()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["progress"]["step"] == 400


def test_uniform_replay_is_spared_the_priorities_transfer(tmp_path):
    from rlrun.loop import Trainer
    from tests.conftest import TINY_RUN, compose_cfg

    trainer = Trainer(compose_cfg(*TINY_RUN), tmp_path)

    def refuse(indices, td_errors):
        raise AssertionError("a uniform buffer was sent priorities")

    trainer.agent.buffer.update_priorities = refuse
    assert trainer.run()["steps"] == 600
    prioritized = Trainer(compose_cfg(*TINY_RUN, "agent=per_dqn"), tmp_path / "per")
    sent = []
    prioritized.agent.buffer.update_priorities = lambda indices, td_errors: sent.append(len(indices))
    prioritized.run()
    assert sent and set(sent) == {32}


@pytest.mark.parametrize(
    "double, dueling, loss, hidden_sizes, max_grad_norm",
    [
        (False, False, "huber", [16, 8], None),
        (True, False, "huber", [16, 8], 0.5),
        (False, True, "huber", [16, 8], 0.5),
        (True, True, "mse", [16, 8], None),
        (False, True, "huber", [8], None),  # dueling without a shared torso: the streams read the observation
        (False, False, "mse", [8], 0.5),
    ],
)
def test_the_mlps_hand_written_backward_equals_autograds_gradients(double, dueling, loss, hidden_sizes, max_grad_norm):
    """One learn() step's gradients (after clipping) and loss equal autograd's on the textbook loss, with importance
    weights, n-step discounts, terminations and TD errors on both sides of the Huber kink."""
    from rlrun.agents.dqn import DQNAgent
    from rlrun.buffers import Batch, ReplayBuffer

    cfg = DQNConfig(hidden_sizes=hidden_sizes, double=double, dueling=dueling, loss=loss, max_grad_norm=max_grad_norm)
    buffer = ReplayBuffer(100, (3,), np.dtype(np.float32), 8, torch.device("cpu"), 0)
    torch.manual_seed(0)
    agent = DQNAgent(cfg, (3,), 4, buffer, lambda step, episode: 0.1, torch.device("cpu"), 0)
    generator = torch.Generator().manual_seed(1)
    size = 32
    batch = Batch(
        obs=torch.randn(size, 3, generator=generator),
        actions=torch.randint(0, 4, (size,), generator=generator),
        rewards=3.0 * torch.randn(size, generator=generator),
        next_obs=torch.randn(size, 3, generator=generator),
        terminated=(torch.rand(size, generator=generator) < 0.2).float(),
        weights=0.2 + 0.8 * torch.rand(size, generator=generator),
        indices=np.arange(size),
        discounts=0.99 ** torch.randint(1, 4, (size,), generator=generator).float(),
    )
    online, target = copy.deepcopy(agent.online), copy.deepcopy(agent.target)
    q_taken = online(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
    targets = td_targets(batch.rewards, batch.next_obs, batch.terminated, online, target, batch.discounts, double)
    errors = (q_taken - targets).detach().abs()
    assert (errors < 1).any() and (errors > 1).any()  # both pieces of the Huber loss are exercised
    loss_fn = nn.HuberLoss(reduction="none") if loss == "huber" else nn.MSELoss(reduction="none")
    expected_loss = (batch.weights * loss_fn(q_taken, targets)).mean()
    expected_loss.backward()
    if max_grad_norm is not None:
        nn.utils.clip_grad_norm_(list(online.parameters()), max_grad_norm)

    metrics = agent.learn(batch)

    assert agent.gradients is not None  # the MLP took the hand-written path
    assert float(metrics["losses/td_loss"]) == pytest.approx(float(expected_loss.detach()), rel=1e-5)
    for (name, mine), theirs in zip(agent.online.named_parameters(), online.parameters()):
        assert theirs.grad is not None and mine.grad is not None
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-4, atol=1e-6, msg=name)
