import numpy as np
import pytest
import torch

from rlrun.buffers import ReplayBuffer


def make_buffer(capacity=5, batch_size=4, obs_shape=(3,), dtype=np.float32, seed=0):
    return ReplayBuffer(capacity, obs_shape, np.dtype(dtype), batch_size, torch.device("cpu"), seed)


def add_numbered(buffer, start, n):
    """Transitions whose every field encodes their number, so a sample can be checked for consistency."""
    ids = np.arange(start, start + n)
    buffer.add(
        np.repeat(ids[:, None], 3, 1),
        ids % 2,
        ids.astype(np.float32),
        np.repeat(ids[:, None] + 1000, 3, 1),
        (ids % 3 == 0),
    )
    return ids


def test_ring_wraps_around_and_overwrites_oldest():
    buffer = make_buffer(capacity=5)
    add_numbered(buffer, 0, 3)
    assert len(buffer) == 3 and buffer.position == 3
    add_numbered(buffer, 3, 4)  # 7 transitions into 5 slots: 0 and 1 are overwritten
    assert len(buffer) == 5 and buffer.position == 2
    assert sorted(buffer.rewards.tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert buffer.rewards[0] == 5.0 and buffer.rewards[1] == 6.0


def test_sample_rows_are_whole_transitions_from_the_stored_ones():
    buffer = make_buffer(capacity=5, batch_size=64)
    add_numbered(buffer, 0, 8)
    batch = buffer.sample(step=0)
    ids = batch.rewards.numpy().astype(int)
    assert set(ids) <= {3, 4, 5, 6, 7}
    np.testing.assert_array_equal(batch.obs.numpy()[:, 0], ids)
    np.testing.assert_array_equal(batch.next_obs.numpy()[:, 0], ids + 1000)
    np.testing.assert_array_equal(batch.actions.numpy(), ids % 2)
    np.testing.assert_array_equal(batch.terminated.numpy(), (ids % 3 == 0).astype(np.float32))
    assert batch.actions.dtype == torch.int64 and batch.obs.dtype == torch.float32
    assert torch.all(batch.weights == 1.0)


def test_sampling_is_uniform_over_stored_slots():
    buffer = make_buffer(capacity=10, batch_size=100, seed=1)
    add_numbered(buffer, 0, 10)
    counts = np.zeros(10)
    for _ in range(200):
        counts += np.bincount(buffer.sample(0).rewards.numpy().astype(int), minlength=10)
    # 20,000 draws, 2,000 expected per slot; binomial sd ~42, so 5 sd is a 210 band.
    assert np.all(np.abs(counts - 2000) < 210), counts


def test_observations_keep_the_env_dtype():
    buffer = make_buffer(obs_shape=(4, 4), dtype=np.uint8)
    assert buffer.observations.obs.dtype == np.uint8 and buffer.observations.obs.shape == (5, 4, 4)
    assert buffer.observations.obs.nbytes == 5 * 16


def test_same_seed_same_samples():
    a, b = make_buffer(seed=3), make_buffer(seed=3)
    for buffer in (a, b):
        add_numbered(buffer, 0, 5)
    np.testing.assert_array_equal(a.sample(0).indices, b.sample(0).indices)


@pytest.mark.parametrize("n", [1, 4])
def test_add_returns_written_slots(n):
    buffer = make_buffer(capacity=5)
    add_numbered(buffer, 0, 3)
    slots = buffer.add(np.zeros((n, 3)), np.zeros(n, int), np.zeros(n), np.zeros((n, 3)), np.zeros(n, bool))
    np.testing.assert_array_equal(slots, (3 + np.arange(n)) % 5)


def traced_peak_bytes(action) -> int:
    """The peak of Python and NumPy allocations (tracemalloc sees NumPy's) while ``action`` runs."""
    import tracemalloc

    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("filled", [20_000, 7_000], ids=["full", "partly filled"])
def test_a_checkpoint_save_does_not_copy_the_buffer(tmp_path, filled):
    from rlrun.buffers import PrioritizedReplayBuffer
    from rlrun.schedules import LinearSchedule

    capacity, shape = 20_000, (50,)  # 8 MB of observations
    buffer = PrioritizedReplayBuffer(
        capacity,
        shape,
        np.dtype(np.float32),
        4,
        torch.device("cpu"),
        0,
        alpha=0.6,
        beta=LinearSchedule(0.4, 1.0, 100),
        eps=1e-6,
    )
    obs = np.random.default_rng(0).standard_normal((filled, *shape)).astype(np.float32)
    buffer.add(obs, np.arange(filled) % 3, np.ones(filled, np.float32), obs + 1, np.zeros(filled, bool))
    del obs
    state = buffer.state_dict()
    arrays = {
        "obs": buffer.observations.obs,
        "next_obs": buffer.observations.next_obs,
        **buffer._fields(),
        "priorities": buffer.tree.leaves,
    }
    for name, array in arrays.items():  # views of the buffer's memory, of its filled part
        assert np.shares_memory(state[name].numpy(), array) and len(state[name]) == filled, name
    path = tmp_path / "last.pt"
    peak = traced_peak_bytes(lambda: torch.save(buffer.state_dict(), path))
    assert peak < 0.05 * buffer.nbytes  # a copy would be 0.35-1.0x of it
    assert path.stat().st_size < 1.05 * (buffer.nbytes * filled / capacity + 8 * filled)  # views save their part
    restored = PrioritizedReplayBuffer(
        capacity,
        shape,
        np.dtype(np.float32),
        4,
        torch.device("cpu"),
        1,
        alpha=0.6,
        beta=LinearSchedule(0.4, 1.0, 100),
        eps=1e-6,
    )
    restored.load_state_dict(torch.load(path, weights_only=True))
    for name, array in arrays.items():
        np.testing.assert_array_equal(
            {
                **restored._fields(),
                "obs": restored.observations.obs,
                "next_obs": restored.observations.next_obs,
                "priorities": restored.tree.leaves,
            }[name][:filled],
            array[:filled],
            name,
        )
