"""Frame-stack replay: each frame stored once, stacks rebuilt exactly, memory per transition within target."""

import numpy as np
import pytest
import torch

from rlrun.buffers import FrameStackStore, PrioritizedReplayBuffer, ReplayBuffer
from rlrun.schedules import LinearSchedule

K, FRAME = 4, (6, 6)
CPU = torch.device("cpu")


def episode_transitions(rng, num_envs, steps, max_len, frame=FRAME):
    """Transitions as Gymnasium's FrameStackObservation (padding with the reset frame) makes them, several
    sub-envs interleaved, episodes of random length; frames drawn from few values, so some repeat."""

    def new_frame():
        return rng.integers(0, 3, frame, dtype=np.uint8)

    stacks = [np.stack([new_frame()] * K) for _ in range(num_envs)]
    lengths = rng.integers(1, max_len, num_envs)
    for _ in range(steps):
        obs = np.stack(stacks)
        next_obs = np.empty_like(obs)
        terminated = np.zeros(num_envs, dtype=bool)
        for i in range(num_envs):
            next_obs[i] = np.concatenate([stacks[i][1:], new_frame()[None]])
            lengths[i] -= 1
            if lengths[i] == 0:  # episode over: the next obs is a fresh reset stack
                terminated[i] = True
                lengths[i] = rng.integers(1, max_len)
                stacks[i] = np.stack([new_frame()] * K)
            else:
                stacks[i] = next_obs[i]
        yield obs, rng.integers(0, 4, num_envs), rng.random(num_envs).astype(np.float32), next_obs, terminated


def twin_buffers(capacity, batch_size, prioritized=False, seed=0, frame=FRAME):
    """The same buffer twice: with frames stored once, and naively with whole stacks."""

    def make(observations):
        if prioritized:
            return PrioritizedReplayBuffer(
                capacity,
                (K, *frame),
                np.dtype(np.uint8),
                batch_size,
                CPU,
                seed,
                alpha=0.6,
                beta=LinearSchedule(0.4, 1.0, 1000),
                eps=1e-6,
                observations=observations,
            )
        return ReplayBuffer(capacity, (K, *frame), np.dtype(np.uint8), batch_size, CPU, seed, observations=observations)

    return make(FrameStackStore(capacity, (K, *frame), np.dtype(np.uint8))), make(None)


def assert_same_contents(frames_buffer, naive_buffer):
    assert len(frames_buffer) == len(naive_buffer)
    size, shape = len(naive_buffer), naive_buffer.observations.obs.shape[1:]
    obs, next_obs = np.empty((size, *shape), np.uint8), np.empty((size, *shape), np.uint8)
    frames_buffer.observations.gather(np.arange(size), obs, next_obs)
    np.testing.assert_array_equal(obs, naive_buffer.observations.obs[:size])
    np.testing.assert_array_equal(next_obs, naive_buffer.observations.next_obs[:size])


def assert_refcounts_match_a_recount(store, size):
    """Every pool frame's count equals the number of stored stack entries pointing at it (brute force)."""
    used = np.concatenate([store.obs_refs[:size].ravel(), store.next_refs[:size].ravel()])
    np.testing.assert_array_equal(np.bincount(used, minlength=len(store.refcount)), store.refcount)


@pytest.mark.parametrize("num_envs", [1, 3])
def test_rebuilt_stacks_equal_naive_stacks_across_episode_boundaries_and_wraparound(num_envs):
    rng = np.random.default_rng(num_envs)
    frames_buffer, naive = twin_buffers(capacity=40, batch_size=16)
    for step, transition in enumerate(episode_transitions(rng, num_envs, steps=150, max_len=9)):
        frames_buffer.add(*transition)
        naive.add(*transition)
        if step % 10 == 0 or step > 140:
            assert_same_contents(frames_buffer, naive)
    assert naive.position != 0 and len(naive) == 40  # wrapped around several times
    for _ in range(5):  # same seed, same slots: sampled batches are identical too
        a, b = frames_buffer.sample(0), naive.sample(0)
        assert torch.equal(a.obs, b.obs) and torch.equal(a.next_obs, b.next_obs)
        assert torch.equal(a.rewards, b.rewards) and torch.equal(a.terminated, b.terminated)
    assert_refcounts_match_a_recount(frames_buffer.observations, len(frames_buffer))


def test_first_stack_of_an_episode_holds_only_that_episodes_frames():
    store = FrameStackStore(8, (K, *FRAME), np.dtype(np.uint8))
    buffer = ReplayBuffer(8, (K, *FRAME), np.dtype(np.uint8), 2, CPU, 0, observations=store)
    old, reset = np.full(FRAME, 7, np.uint8), np.full(FRAME, 9, np.uint8)
    last_of_old = np.stack([old] * K)
    first_of_new = np.stack([reset] * K)
    buffer.add(last_of_old[None], [0], [0.0], last_of_old[None], [True])
    buffer.add(first_of_new[None], [1], [0.0], np.concatenate([first_of_new[1:], old[None]])[None], [False])
    obs, next_obs = np.empty((2, K, *FRAME), np.uint8), np.empty((2, K, *FRAME), np.uint8)
    store.gather(np.array([0, 1]), obs, next_obs)
    assert (obs[1] == 9).all()  # the reset stack: no frame of the previous episode
    np.testing.assert_array_equal(next_obs[1][-1], old)
    assert store.used == 2  # the repeated reset frame, and the repeats of the old one, are one frame each


def test_any_order_of_adds_rebuilds_exactly_as_n_step_transitions_arrive():
    """n-step returns add (s_t, s_t+n) pairs late and in bursts at episode ends: stacks must not care."""
    rng = np.random.default_rng(3)
    transitions = list(episode_transitions(rng, 2, steps=60, max_len=12))
    order = rng.permutation(len(transitions))
    frames_buffer, naive = twin_buffers(capacity=100, batch_size=8)
    for i in order:
        obs, actions, rewards, next_obs, terminated = transitions[i]
        late = transitions[min(i + 3, len(transitions) - 1)][3]  # a next obs 3 steps on, as n=3 would store
        frames_buffer.add(obs, actions, rewards, late, terminated)
        naive.add(obs, actions, rewards, late, terminated)
    assert_same_contents(frames_buffer, naive)


def test_prioritized_replay_samples_the_same_stacks_on_frame_storage():
    rng = np.random.default_rng(5)
    frames_buffer, naive = twin_buffers(capacity=30, batch_size=8, prioritized=True)
    for transition in episode_transitions(rng, 2, steps=70, max_len=7):
        frames_buffer.add(*transition)
        naive.add(*transition)
    for step in range(5):
        a, b = frames_buffer.sample(step), naive.sample(step)
        np.testing.assert_array_equal(a.indices, b.indices)
        assert torch.equal(a.obs, b.obs) and torch.equal(a.next_obs, b.next_obs) and torch.equal(a.weights, b.weights)
        errors = rng.random(8)
        frames_buffer.update_priorities(a.indices, errors)
        naive.update_priorities(b.indices, errors)


def test_checkpoint_round_trip_rebuilds_the_same_stacks():
    rng = np.random.default_rng(7)
    source, naive = twin_buffers(capacity=25, batch_size=4)
    for transition in episode_transitions(rng, 2, steps=40, max_len=6):
        source.add(*transition)
        naive.add(*transition)
    state = source.state_dict()
    restored, _ = twin_buffers(capacity=25, batch_size=4)
    restored.load_state_dict(state)
    assert_same_contents(restored, naive)
    assert_refcounts_match_a_recount(restored.observations, len(restored))
    for transition in episode_transitions(rng, 2, steps=30, max_len=6):  # and it keeps working after
        restored.add(*transition)
        naive.add(*transition)
    assert_same_contents(restored, naive)


def test_pool_grows_instead_of_failing_when_episodes_are_tiny():
    rng = np.random.default_rng(9)
    frames_buffer, naive = twin_buffers(capacity=200, batch_size=4)
    before = len(frames_buffer.observations.frames)
    for transition in episode_transitions(rng, 4, steps=100, max_len=2):  # 1-step episodes: 2 new frames each
        frames_buffer.add(*transition)
        naive.add(*transition)
    assert len(frames_buffer.observations.frames) > before
    assert_same_contents(frames_buffer, naive)


def test_atari_sized_transition_costs_at_most_7_5_kb_at_a_million():
    capacity = 1_000_000  # np.zeros reserves without touching: nbytes is what a full buffer holds
    for kind in ("uniform", "prioritized"):
        store = FrameStackStore(capacity, (4, 84, 84), np.dtype(np.uint8))
        if kind == "uniform":
            buffer = ReplayBuffer(capacity, (4, 84, 84), np.dtype(np.uint8), 32, CPU, 0, observations=store)
            extra = 0
        else:
            buffer = PrioritizedReplayBuffer(
                capacity,
                (4, 84, 84),
                np.dtype(np.uint8),
                32,
                CPU,
                0,
                alpha=0.6,
                beta=LinearSchedule(0.4, 1.0, 10),
                eps=1e-6,
                observations=store,
            )
            extra = sum(level.nbytes for level in buffer.tree.levels)
        per_transition = (buffer.nbytes + extra) / capacity
        assert 7056 < per_transition <= 7500, (kind, per_transition)
        assert 2 * 4 * 84 * 84 / per_transition > 7.5  # against two whole stacks per transition


def test_breakout_length_episodes_fill_the_pool_without_growing_it():
    """Episodes of a few dozen steps (Breakout lives) add one reset frame each: within the pool's slack."""
    rng = np.random.default_rng(11)
    capacity = 600
    store = FrameStackStore(capacity, (K, *FRAME), np.dtype(np.uint8))
    buffer = ReplayBuffer(capacity, (K, *FRAME), np.dtype(np.uint8), 4, CPU, 0, observations=store)
    pool = len(store.frames)
    for transition in episode_transitions(rng, 1, steps=3 * capacity, max_len=60):
        buffer.add(*transition)
    assert len(store.frames) == pool
    assert_refcounts_match_a_recount(store, len(buffer))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_come_from_pinned_memory_and_match_the_cpu_ones():
    cuda = torch.device("cuda")
    rng = np.random.default_rng(13)
    on_gpu = ReplayBuffer(
        50,
        (K, *FRAME),
        np.dtype(np.uint8),
        8,
        cuda,
        0,
        observations=FrameStackStore(50, (K, *FRAME), np.dtype(np.uint8)),
    )
    on_cpu, _ = twin_buffers(capacity=50, batch_size=8)
    for transition in episode_transitions(rng, 2, steps=40, max_len=8):
        on_gpu.add(*transition)
        on_cpu.add(*transition)
    assert all(tensor.is_pinned() for tensor in on_gpu._batch_tensors.values())
    for _ in range(3):
        a, b = on_gpu.sample(0), on_cpu.sample(0)
        assert a.obs.device.type == "cuda" and a.obs.dtype == torch.uint8
        assert torch.equal(a.obs.cpu(), b.obs) and torch.equal(a.next_obs.cpu(), b.next_obs)


def test_a_checkpoint_of_the_frame_store_holds_views_not_copies(tmp_path):
    import tracemalloc

    rng = np.random.default_rng(3)
    buffer, naive = twin_buffers(capacity=400, batch_size=4, frame=(84, 84))  # 3 MB of frames
    for transition in episode_transitions(rng, 2, steps=300, max_len=30, frame=(84, 84)):
        buffer.add(*transition)
        naive.add(*transition)
    store, state = buffer.observations, buffer.state_dict()
    for name, array in (
        ("frames", store.frames),
        ("frame_refcount", store.refcount),
        ("frame_keys", store.keys),
        ("obs_refs", store.obs_refs),
        ("next_obs_refs", store.next_refs),
    ):
        assert np.shares_memory(state[name].numpy(), array), name
    tracemalloc.start()
    torch.save(buffer.state_dict(), tmp_path / "last.pt")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.05 * store.frames[: store.used].nbytes  # a copy would be 1.0x of it
    restored, _ = twin_buffers(capacity=400, batch_size=4, frame=(84, 84))
    restored.load_state_dict(torch.load(tmp_path / "last.pt", weights_only=True))
    assert_same_contents(restored, naive)
    older = {**state, "frame_keys": torch.from_numpy(store.keys[: store.used].astype(np.int64))}  # before: int64 keys
    restored, _ = twin_buffers(capacity=400, batch_size=4, frame=(84, 84))
    restored.load_state_dict(older)
    np.testing.assert_array_equal(restored.observations.keys, store.keys)
