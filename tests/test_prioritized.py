"""Prioritized replay against brute-force references: tree sums, sampling frequencies, IS weights."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlrun.buffers import PrioritizedReplayBuffer, SumTree
from rlrun.schedules import LinearSchedule


def assert_tree_consistent(tree: SumTree):
    for depth in range(tree.depth):
        child_sums = tree.levels[depth + 1].reshape(-1, tree.branching).sum(axis=1)
        np.testing.assert_allclose(tree.levels[depth], child_sums, rtol=1e-9, atol=1e-9)
    assert tree.total == pytest.approx(tree.leaves.sum(), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 3000),
    branching=st.sampled_from([2, 4, 32]),
    top_size=st.sampled_from([1, 3, 2048]),
    updates=st.lists(st.tuples(st.integers(0, 10**6), st.floats(0.0, 1e3)), min_size=1, max_size=40),
    batch=st.integers(1, 64),
)
def test_every_node_is_the_sum_of_its_leaves_after_random_updates(capacity, branching, top_size, updates, batch):
    tree = SumTree(capacity, branching, top_size)
    rng = np.random.default_rng(len(updates))
    for seed, value in updates:
        indices = np.random.default_rng(seed).integers(0, capacity, size=batch)  # repeats included
        tree.update(indices, rng.random(batch) * value)
    assert_tree_consistent(tree)
    assert tree.leaves[capacity:].sum() == 0.0  # padding untouched


@pytest.mark.parametrize("top_size", [1, 2, 2048])  # a pure binary tree, mixed, and a single flat level
def test_find_returns_the_leaf_whose_interval_holds_the_value(top_size):
    tree = SumTree(5, branching=2, top_size=top_size)
    tree.update(np.arange(5), np.array([1.0, 0.0, 2.0, 3.0, 4.0]))
    # prefix intervals: [0,1) -> 0, [1,3) -> 2, [3,6) -> 3, [6,10) -> 4
    values = np.array([0.0, 0.999, 1.0, 2.5, 3.0, 5.99, 6.0, 9.999])
    np.testing.assert_array_equal(tree.find(values), [0, 0, 2, 2, 3, 3, 4, 4])


@settings(max_examples=40, deadline=None)
@given(capacity=st.integers(1, 5000), top_size=st.sampled_from([1, 7, 2048]), seed=st.integers(0, 1000))
def test_find_agrees_with_searchsorted_over_all_prefix_sums(capacity, top_size, seed):
    rng = np.random.default_rng(seed)
    tree = SumTree(capacity, branching=4, top_size=top_size)
    priorities = rng.random(capacity) + 0.01
    tree.update(np.arange(capacity), priorities)
    values = rng.random(64) * priorities.sum() * 0.999999
    expected = np.searchsorted(np.cumsum(priorities), values, side="right")
    found = tree.find(values)
    # equal except where a value sits within rounding of an interval boundary
    mismatch = found != expected
    assert mismatch.sum() <= 1, (found[mismatch], expected[mismatch])


def make_buffer(capacity, batch_size=64, alpha=0.6, beta_start=0.4, seed=0):
    return PrioritizedReplayBuffer(
        capacity,
        (2,),
        np.dtype(np.float32),
        batch_size,
        torch.device("cpu"),
        seed,
        alpha=alpha,
        beta=LinearSchedule(beta_start, 1.0, 1000),
        eps=1e-6,
    )


def fill(buffer, n):
    ids = np.arange(n)
    buffer.add(np.zeros((n, 2)), ids % 2, ids.astype(np.float32), np.zeros((n, 2)), np.zeros(n, bool))


def sampling_frequencies(buffer, draws):
    counts = np.zeros(buffer.capacity)
    for _ in range(draws // buffer.batch_size):
        counts += np.bincount(buffer.sample(0).indices, minlength=buffer.capacity)
    return counts / counts.sum(), counts.sum()


@pytest.mark.parametrize("wrap", [False, True])
def test_sampling_frequencies_match_priorities_to_the_alpha(wrap):
    buffer = make_buffer(capacity=8, alpha=0.7)
    fill(buffer, 8)
    if wrap:
        fill(buffer, 5)  # overwrites slots 0-4 with max priority
    td = np.array([0.1, 0.5, 1.0, 2.0, 0.05, 3.0, 0.7, 1.5])
    buffer.update_priorities(np.arange(8), td)
    expected = (td + 1e-6) ** 0.7 / ((td + 1e-6) ** 0.7).sum()
    observed, n = sampling_frequencies(buffer, 200_000)
    # Stratified draws vary less than multinomial ones, so the multinomial sd is a safe upper bound.
    tolerance = 5 * np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(observed - expected) < tolerance), (observed, expected)


def test_new_transitions_get_the_max_priority():
    buffer = make_buffer(capacity=6)
    fill(buffer, 3)
    buffer.update_priorities(np.array([0, 1, 2]), np.array([0.5, 4.0, 1.0]))
    fill(buffer, 2)  # slots 3 and 4
    assert buffer.max_priority == pytest.approx(4.0 + 1e-6)
    np.testing.assert_allclose(buffer.tree.leaves[[3, 4]], (4.0 + 1e-6) ** 0.6)


def test_importance_weights_equal_brute_force():
    buffer = make_buffer(capacity=10, batch_size=16, alpha=0.6, beta_start=0.4)
    fill(buffer, 10)
    td = np.linspace(0.1, 5.0, 10)
    buffer.update_priorities(np.arange(10), td)
    batch = buffer.sample(step=500)  # beta = 0.4 + 0.6 * 500/1000 = 0.7
    p = (td + 1e-6) ** 0.6
    probabilities = p / p.sum()
    raw = (10 * probabilities[batch.indices]) ** -0.7
    np.testing.assert_allclose(batch.weights.numpy(), raw / raw.max(), rtol=1e-5)
    assert buffer.metrics()["train/beta"] == pytest.approx(0.7)


def test_alpha_zero_is_uniform_with_unit_weights():
    buffer = make_buffer(capacity=8, alpha=0.0)
    fill(buffer, 8)
    buffer.update_priorities(np.arange(8), np.array([0.01, 100, 3, 4, 5, 6, 7, 8.0]))
    observed, n = sampling_frequencies(buffer, 100_000)
    assert np.all(np.abs(observed - 1 / 8) < 5 * np.sqrt((1 / 8) * (7 / 8) / n))
    assert torch.all(buffer.sample(0).weights == 1.0)


def test_partly_filled_buffer_never_samples_empty_slots():
    buffer = make_buffer(capacity=1000, batch_size=64)
    fill(buffer, 10)
    for _ in range(50):
        assert buffer.sample(0).indices.max() < 10


def test_per_dqn_run_logs_beta_rising_towards_one(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rlrun.loop import train
    from tests.conftest import TINY_RUN, compose_cfg

    cfg = compose_cfg(*TINY_RUN, "agent=per_dqn", "env=cartpole")
    assert cfg.buffer.name == "prioritized"
    train(cfg, tmp_path)
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    betas = [e.value for e in events.Scalars("train/beta")]
    assert betas == sorted(betas) and betas[0] >= 0.4 and betas[-1] == pytest.approx(1.0, abs=0.01)
    assert events.Scalars("buffer/max_priority")[-1].value >= 1.0


def test_tree_update_takes_one_value_for_all_indices_and_refuses_a_mismatch():
    tree = SumTree(100, branching=4, top_size=4)
    tree.update(np.array([3, 50, 99]), 2.0)
    np.testing.assert_array_equal(tree.leaves[[3, 50, 99]], [2.0, 2.0, 2.0])
    assert tree.total == 6.0
    assert_tree_consistent(tree)
    with pytest.raises(ValueError, match="2 values for 3 indices"):
        tree.update(np.array([1, 2, 3]), np.array([1.0, 2.0]))


def test_million_leaf_tree_finds_like_searchsorted():
    """The default shape at the size benchmarks/replay.py times: five levels of 16."""
    rng = np.random.default_rng(0)
    capacity = 1_000_000
    tree = SumTree(capacity)
    priorities = rng.exponential(1.0, capacity)
    tree.update(np.arange(capacity), priorities)
    assert_tree_consistent(tree)
    values = np.sort(rng.random(256)) * priorities.sum() * 0.999999
    mismatch = tree.find(values) != np.searchsorted(np.cumsum(priorities), values, side="right")
    assert mismatch.sum() <= 1
