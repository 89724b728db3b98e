"""n-step returns: a hand-computed example (termination, truncation, two sub-envs, ring wrap-around),
a brute-force reference on random episodes, prioritized storage, exact state round trips and targets."""

import numpy as np
import pytest
import torch

from rlrun.agents.dqn import td_targets
from rlrun.buffers import NStepWindow, PrioritizedReplayBuffer, ReplayBuffer
from rlrun.schedules import LinearSchedule

GAMMA = 0.5
F, T = False, True

# Two sub-envs, n=3. Observations are ids; env 0 terminates at t=3, env 1 is truncated at t=1.
#        t:   obs (env0, env1)   action   reward      next_obs (true final obs at an episode end)  term     trunc
STEPS = [
    ((0, 100), (0, 1), (1.0, 10.0), (1, 101), (F, F), (F, F)),
    ((1, 101), (1, 0), (2.0, 20.0), (2, 102), (F, F), (F, T)),  # env 1 truncated: next_obs 102 is its true last obs
    ((2, 200), (0, 1), (4.0, 30.0), (3, 201), (F, F), (F, F)),
    ((3, 201), (1, 1), (8.0, 40.0), (4, 202), (T, F), (F, F)),  # env 0 terminated
    ((10, 202), (0, 0), (1.0, 50.0), (11, 203), (F, F), (F, F)),
]
# Per step, the completed transitions (obs, action, n-step return, next_obs, terminated, gamma^k), oldest first.
EXPECTED = [
    [],
    [(100, 1, 10 + 0.5 * 20, 102, F, 0.25), (101, 0, 20.0, 102, F, 0.5)],  # truncation: flush, still bootstrap
    [(0, 0, 1 + 0.5 * 2 + 0.25 * 4, 3, F, 0.125)],  # env 0's window is full
    [(1, 1, 2 + 0.5 * 4 + 0.25 * 8, 4, T, 0.125), (2, 0, 4 + 0.5 * 8, 4, T, 0.25), (3, 1, 8.0, 4, T, 0.5)],
    [(200, 1, 30 + 0.5 * 40 + 0.25 * 50, 203, F, 0.125)],  # env 1's new episode fills its window
]


def push(target, step):
    obs, actions, rewards, next_obs, terminated, truncated = (np.array(field) for field in step)
    return target(
        obs[:, None].astype(np.float32),
        actions,
        rewards.astype(np.float32),
        next_obs[:, None].astype(np.float32),
        terminated,
        truncated,
    )


def as_rows(completed):
    if completed is None:
        return []
    obs, actions, returns, next_obs, terminated, discounts = completed
    return [
        (float(o[0]), int(a), float(r), float(no[0]), bool(t), float(d))
        for o, a, r, no, t, d in zip(obs, actions, returns, next_obs, terminated, discounts)
    ]


def test_window_matches_the_hand_computed_example():
    window = NStepWindow(3, GAMMA, 2, (1,), np.dtype(np.float32))
    for step, expected in zip(STEPS, EXPECTED):
        assert as_rows(push(window.push, step)) == expected


def test_buffer_stores_n_step_transitions_and_wraps_around():
    buffer = ReplayBuffer(4, (1,), np.dtype(np.float32), 2, torch.device("cpu"), 0, gamma=GAMMA, n_step=3, num_envs=2)
    for step in STEPS:
        push(buffer.observe, step)
    # 7 transitions into 4 slots: the last four remain, the last one written at slot 6 % 4 = 2.
    assert len(buffer) == 4 and buffer.position == 3
    stored = [row for rows in EXPECTED for row in rows][-4:]
    order = [3, 0, 1, 2]  # slots of the 4th..7th transitions
    for slot, (obs, action, ret, next_obs, terminated, discount) in zip(order, stored):
        assert buffer.observations.obs[slot, 0] == obs and buffer.actions[slot] == action
        assert buffer.rewards[slot] == pytest.approx(ret) and buffer.observations.next_obs[slot, 0] == next_obs
        assert buffer.terminated[slot] == terminated and buffer.discounts[slot] == pytest.approx(discount)


def test_one_step_buffer_stores_each_step_with_gamma():
    buffer = ReplayBuffer(10, (1,), np.dtype(np.float32), 2, torch.device("cpu"), 0, gamma=0.9, n_step=1, num_envs=2)
    for step in STEPS:
        push(buffer.observe, step)
    assert len(buffer) == 10
    np.testing.assert_allclose(buffer.discounts, 0.9)
    np.testing.assert_array_equal(buffer.rewards[:4], [1, 10, 2, 20])


def brute_force_n_step(rewards, dones, terminals, n, gamma):
    """For one sub-env's step sequence: each step's (return, k, terminated) by direct summation."""
    out = []
    for t in range(len(rewards)):
        total, k = 0.0, 0
        while k < n and t + k < len(rewards):
            total += gamma**k * rewards[t + k]
            k += 1
            if dones[t + k - 1]:
                out.append((total, k, terminals[t + k - 1]))
                break
        else:
            if k == n:
                out.append((total, k, False))
            # else: still pending at the end of the data
    return out


@pytest.mark.parametrize("n", [1, 2, 5])
def test_window_matches_brute_force_on_random_episodes(n):
    rng = np.random.default_rng(n)
    num_envs, steps, gamma = 3, 200, 0.9
    rewards = rng.standard_normal((steps, num_envs))
    terminated = rng.random((steps, num_envs)) < 0.08
    truncated = ~terminated & (rng.random((steps, num_envs)) < 0.05)
    # obs encode (step, env) so each emitted transition can be traced back to its start
    window = NStepWindow(n, gamma, num_envs, (2,), np.dtype(np.float64))
    got = {env: [] for env in range(num_envs)}
    for t in range(steps):
        obs = np.stack([np.full(num_envs, t), np.arange(num_envs)], axis=1).astype(np.float64)
        completed = window.push(obs, np.zeros(num_envs, int), rewards[t], obs + [[0.5, 0]], terminated[t], truncated[t])
        if completed is not None:
            for o, _, ret, _, term, discount in zip(*completed):
                got[int(o[1])].append((int(o[0]), ret, discount, bool(term)))
    for env in range(num_envs):
        expected = brute_force_n_step(
            rewards[:, env], terminated[:, env] | truncated[:, env], terminated[:, env], n, gamma
        )
        ordered = sorted(got[env])
        assert len(ordered) == len(expected)
        for (_start, ret, discount, term), (want_ret, want_k, want_term) in zip(ordered, expected):
            assert ret == pytest.approx(want_ret) and discount == pytest.approx(gamma**want_k)
            assert term == want_term


def test_prioritized_buffer_gives_each_n_step_transition_the_max_priority():
    buffer = PrioritizedReplayBuffer(
        16,
        (1,),
        np.dtype(np.float32),
        2,
        torch.device("cpu"),
        0,
        alpha=1.0,
        beta=LinearSchedule(0.4, 1.0, 100),
        eps=1e-6,
        gamma=GAMMA,
        n_step=3,
        num_envs=2,
    )
    buffer.max_priority = 2.0
    for step in STEPS:
        push(buffer.observe, step)
    assert len(buffer) == 7
    np.testing.assert_allclose(buffer.tree.leaves[:7], 2.0)
    assert buffer.tree.total == pytest.approx(14.0)
    np.testing.assert_allclose(buffer.discounts[:7], [row[5] for rows in EXPECTED for row in rows])


def test_state_dict_carries_pending_windows():
    def fresh():
        return ReplayBuffer(8, (1,), np.dtype(np.float32), 2, torch.device("cpu"), 0, gamma=GAMMA, n_step=3, num_envs=2)

    whole, first = fresh(), fresh()
    for step in STEPS:
        push(whole.observe, step)
    for step in STEPS[:3]:
        push(first.observe, step)
    resumed = fresh()
    resumed.load_state_dict(first.state_dict())
    for step in STEPS[3:]:
        push(resumed.observe, step)
    for name, array in whole._fields().items():
        np.testing.assert_array_equal(getattr(resumed, name), array, err_msg=name)


def test_targets_use_gamma_to_the_k_per_transition():
    class TableQ(torch.nn.Module):
        def forward(self, obs):
            return torch.stack([obs[:, 0], obs[:, 0] + 1.0], dim=1)  # max is obs + 1

    rewards = torch.tensor([3.0, 3.0, 3.0])
    next_obs = torch.tensor([[1.0], [1.0], [1.0]])
    terminated = torch.tensor([0.0, 0.0, 1.0])
    discounts = torch.tensor([0.125, 0.5, 0.125])
    targets = td_targets(rewards, next_obs, terminated, TableQ(), TableQ(), discounts, double=False)
    torch.testing.assert_close(targets, torch.tensor([3.0 + 0.125 * 2, 3.0 + 0.5 * 2, 3.0]))


def test_resume_with_fresh_episodes_drops_the_pending_windows(tmp_path):
    # LunarLander (Box2D) cannot continue an episode after a resume: the envs start fresh ones. Windows pending
    # at the checkpoint must not be completed with the new episodes' rewards (a review found transitions whose
    # s_t came from the old episode and whose rewards and s_t+k from the new one).
    from rlrun.loop import Trainer, resume
    from tests.conftest import compose_cfg, interrupt_at

    overrides = [
        "agent=dqn",
        "buffer.n_step=3",
        "env=lunarlander",
        "agent.learning_starts=100000",
        "total_steps=200",
        "eval.every=100000",
        "eval.episodes=1",
        "save_every=100000",
        "device=cpu",
        "seed=5",
    ]
    trainer = Trainer(compose_cfg(*overrides), tmp_path)
    interrupt_at(trainer, 50)
    trainer.run()
    window = trainer.agent.buffer.window
    assert window.lengths.max() > 0  # interrupted with n-step windows pending
    old_states = window.obs.reshape(-1, window.obs.shape[-1]).copy()
    stored_before = len(trainer.agent.buffer)

    resumed = {}
    original_init = Trainer.__init__

    def keep_trainer(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        resumed["trainer"] = self

    Trainer.__init__ = keep_trainer
    try:
        resume(compose_cfg(f"resume={tmp_path}", "total_steps=120"), ["total_steps"])
    finally:
        Trainer.__init__ = original_init
    buffer = resumed["trainer"].agent.buffer
    new_obs = buffer.observations.obs[stored_before : len(buffer)]
    assert len(new_obs) > 0
    stitched = [row for row in new_obs if any(np.array_equal(row, old) for old in old_states)]
    assert not stitched, f"{len(stitched)} transitions start in the episode before the resume"
