"""Replay-buffer cost at scale: microseconds per sample(64), update_priorities(64) and add of one transition,
and bytes per transition.

A full buffer of 1,000,000 LunarLander-sized transitions (8 float32 observations), batch 64, for the
prioritized buffer (sum tree), the uniform buffer, and, for contrast, prioritized sampling done the
O(capacity) way (normalise the whole priority array, then np.random.choice over it).

    python benchmarks/replay.py [--capacity 1000000] [--repeats 2000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from rlrun.buffers import PrioritizedReplayBuffer, ReplayBuffer
from rlrun.schedules import LinearSchedule

OBS_SHAPE, BATCH = (8,), 64


def fill(buffer, capacity: int, rng: np.random.Generator) -> None:
    chunk = 50_000
    for start in range(0, capacity, chunk):
        n = min(chunk, capacity - start)
        obs = rng.standard_normal((n, *OBS_SHAPE), dtype=np.float32)
        buffer.add(obs, rng.integers(0, 4, n), rng.standard_normal(n, dtype=np.float32), obs, rng.random(n) < 0.01)


def microseconds(fn, repeats: int) -> float:
    for _ in range(min(200, repeats)):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cpu = torch.device("cpu")
    capacity = args.capacity

    uniform = ReplayBuffer(capacity, OBS_SHAPE, np.dtype(np.float32), BATCH, cpu, 0)
    prioritized = PrioritizedReplayBuffer(capacity, OBS_SHAPE, np.dtype(np.float32), BATCH, cpu, 0, alpha=0.6,
                                          beta=LinearSchedule(0.4, 1.0, 10**6), eps=1e-6)
    for buffer in (uniform, prioritized):
        fill(buffer, capacity, rng)
    # realistic, uneven priorities everywhere
    for start in range(0, capacity, 50_000):
        idx = np.arange(start, min(start + 50_000, capacity))
        prioritized.update_priorities(idx, rng.exponential(1.0, len(idx)))

    td_errors = rng.exponential(1.0, BATCH)
    last = {}

    def sample_prioritized():
        last["indices"] = prioritized.sample(step=1000).indices

    uniform_us = microseconds(lambda: uniform.sample(step=1000), args.repeats)
    sample_us = microseconds(sample_prioritized, args.repeats)
    update_us = microseconds(lambda: prioritized.update_priorities(last["indices"], td_errors), args.repeats)

    one_obs = rng.standard_normal((1, *OBS_SHAPE), dtype=np.float32)
    one = (one_obs, np.array([1]), np.array([0.5], dtype=np.float32), one_obs, np.array([False]))
    add_uniform_us = microseconds(lambda: uniform.add(*one), args.repeats)
    add_prioritized_us = microseconds(lambda: prioritized.add(*one), args.repeats)

    priorities = prioritized.tree.leaves[:capacity]

    def sample_by_full_normalisation():
        probabilities = priorities / priorities.sum()
        indices = rng.choice(capacity, BATCH, p=probabilities)
        return indices, (capacity * probabilities[indices]) ** -0.4

    naive_us = microseconds(sample_by_full_normalisation, max(20, args.repeats // 100))

    stored = [uniform.obs, uniform.next_obs, uniform.actions, uniform.rewards, uniform.terminated]
    bytes_uniform = sum(a.nbytes for a in stored) / capacity
    bytes_prioritized = bytes_uniform + sum(level.nbytes for level in prioritized.tree.levels) / capacity

    print(f"command: python {' '.join(sys.argv)}")
    print(f"capacity {capacity:,}, observations {OBS_SHAPE} float32, batch {BATCH}, 1 torch thread")
    print(f"{'operation':<52} {'us/call':>9}")
    print(f"{'uniform sample(64)':<52} {uniform_us:>9.1f}")
    print(f"{'prioritized sample(64) (sum tree, stratified)':<52} {sample_us:>9.1f}")
    print(f"{'prioritized update_priorities(64)':<52} {update_us:>9.1f}")
    print(f"{'prioritized sample + update':<52} {sample_us + update_us:>9.1f}")
    print(f"{'prioritized sample, O(capacity) normalise + choice':<52} {naive_us:>9.1f}")
    print(f"{'uniform add(1 transition)':<52} {add_uniform_us:>9.1f}")
    print(f"{'prioritized add(1 transition)':<52} {add_prioritized_us:>9.1f}")
    print(f"prioritized sample / uniform sample: {sample_us / uniform_us:.2f}x; "
          f"O(capacity) sample / sum-tree sample: {naive_us / sample_us:.0f}x")
    print(f"issue targets: (prioritized sample + update) / uniform sample = {(sample_us + update_us) / uniform_us:.2f} "
          f"(<= 3); prioritized add of one transition = {add_prioritized_us:.1f} us (<= 10)")
    print(f"bytes per stored transition: uniform {bytes_uniform:.1f}, prioritized {bytes_prioritized:.1f}")


if __name__ == "__main__":
    main()
