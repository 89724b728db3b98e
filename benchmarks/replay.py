"""Replay-buffer cost at scale: microseconds per sample(64), update_priorities(64) and add of one transition,
and bytes per transition.

A full buffer of 1,000,000 LunarLander-sized transitions (8 float32 observations), batch 64, for the
prioritized buffer (sum tree), the uniform buffer, and, for contrast, prioritized sampling done the
O(capacity) way (normalise the whole priority array, then np.random.choice over it).

Atari part: bytes per transition of 4 x 84 x 84 uint8 frame stacks (FrameStackStore) at the same capacity,
then add() and sample(32) timed on a buffer filled with --atari-fill transitions of synthetic episodes.

Checkpoint part: the peak memory of saving a buffer (``torch.save(buffer.state_dict())``, what ``last.pt`` does),
each in a fresh subprocess: its peak resident memory during the save (VmHWM, reset just before) less its memory
before the buffer existed, as a ratio to the buffer's size; 1.0 is the buffer alone, 2.0 a full copy of it.

    python benchmarks/replay.py [--capacity 1000000] [--repeats 2000] [--atari-only] [--atari-fill 20000]
    python benchmarks/replay.py --save-memory-only [--capacity 1000000] [--atari-fill 20000]

``--out PATH`` also writes the tables it printed as a result file (e.g. results/performance/replay.json; schema in
benchmarks/result_files.py), with the command, commit, date and machine, for the docs' Performance page.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import result_files
import torch

from rlrun.buffers import FrameStackStore, PrioritizedReplayBuffer, ReplayBuffer
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
    parser.add_argument("--atari-only", action="store_true", help="only the Atari frame-stack part")
    parser.add_argument("--atari-fill", type=int, default=20_000, help="transitions added for the Atari timings")
    parser.add_argument("--save-memory-only", action="store_true", help="only the checkpoint peak-memory part")
    parser.add_argument("--save-child", nargs=3, metavar=("KIND", "CAPACITY", "FILL"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="also write the tables as a result file (JSON) here")
    parser.add_argument("--note", action="append", default=[], help="a sentence the result file keeps (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.save_child:
        kind, capacity, filled = args.save_child
        save_memory_child(kind, int(capacity), int(filled))
        return
    print(f"command: python {' '.join(sys.argv)}")
    measured = [save_memory(args)]
    if not args.save_memory_only:
        measured.append(atari_frames(args))
        if not args.atari_only:
            measured += lunarlander_sized(args)
    if args.out:
        document = {
            "schema": result_files.SCHEMAS["performance"],
            "benchmark": "replay",
            **result_files.provenance_fields(f"python benchmarks/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:])),
            "tables": measured,
            "notes": list(args.note),
        }
        result_files.write(Path(args.out), document)


def lunarlander_sized(args) -> list[dict]:
    """µs per call of sample, update_priorities and add on full buffers of LunarLander-sized transitions."""
    rng = np.random.default_rng(0)
    cpu = torch.device("cpu")
    capacity = args.capacity

    uniform = ReplayBuffer(capacity, OBS_SHAPE, np.dtype(np.float32), BATCH, cpu, 0)
    prioritized = PrioritizedReplayBuffer(
        capacity,
        OBS_SHAPE,
        np.dtype(np.float32),
        BATCH,
        cpu,
        0,
        alpha=0.6,
        beta=LinearSchedule(0.4, 1.0, 10**6),
        eps=1e-6,
    )
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

    bytes_uniform = uniform.nbytes / capacity
    bytes_prioritized = bytes_uniform + sum(level.nbytes for level in prioritized.tree.levels) / capacity

    print(f"capacity {capacity:,}, observations {OBS_SHAPE} float32, batch {BATCH}, 1 torch thread")
    print(f"{'operation':<52} {'us/call':>9}")
    print(f"{'uniform sample(64)':<52} {uniform_us:>9.1f}")
    print(f"{'prioritized sample(64) (sum tree, stratified)':<52} {sample_us:>9.1f}")
    print(f"{'prioritized update_priorities(64)':<52} {update_us:>9.1f}")
    print(f"{'prioritized sample + update':<52} {sample_us + update_us:>9.1f}")
    print(f"{'prioritized sample, O(capacity) normalise + choice':<52} {naive_us:>9.1f}")
    print(f"{'uniform add(1 transition)':<52} {add_uniform_us:>9.1f}")
    print(f"{'prioritized add(1 transition)':<52} {add_prioritized_us:>9.1f}")
    print(
        f"prioritized sample / uniform sample: {sample_us / uniform_us:.2f}x; "
        f"O(capacity) sample / sum-tree sample: {naive_us / sample_us:.0f}x"
    )
    print(
        f"issue targets: (prioritized sample + update) / uniform sample = {(sample_us + update_us) / uniform_us:.2f} "
        f"(<= 3); prioritized add of one transition = {add_prioritized_us:.1f} us (<= 10)"
    )
    print(f"bytes per stored transition: uniform {bytes_uniform:.1f}, prioritized {bytes_prioritized:.1f}")
    operations = [
        ["uniform `sample(64)`", f"{uniform_us:.1f}"],
        ["prioritized `sample(64)` (sum tree, stratified)", f"{sample_us:.1f}"],
        ["prioritized `update_priorities(64)`", f"{update_us:.1f}"],
        ["prioritized sample + update", f"{sample_us + update_us:.1f}"],
        ["prioritized sample, O(capacity) normalise + choice", f"{naive_us:,.1f}"],
        ["uniform `add` of one transition", f"{add_uniform_us:.1f}"],
        ["prioritized `add` of one transition", f"{add_prioritized_us:.1f}"],
    ]
    return [
        {
            "title": f"{capacity:,} transitions of {OBS_SHAPE} float32 observations, batch {BATCH}",
            "columns": ["operation", "µs per call"],
            "rows": operations,
        },
        {
            "title": "bytes per stored transition",
            "columns": ["buffer", "bytes"],
            "rows": [["uniform", f"{bytes_uniform:.1f}"], ["prioritized", f"{bytes_prioritized:.1f}"]],
        },
    ]


ATARI_STACK, ATARI_BATCH = (4, 84, 84), 32


def atari_episode_steps(rng: np.random.Generator, count: int, mean_length: int = 130):
    """Stacked frames as FrameStackObservation gives them: a fixed background with a moving block, padded
    with the reset frame at each episode start; episodes of geometric length (Breakout-like by default)."""
    background = rng.integers(0, 256, ATARI_STACK[1:], dtype=np.uint8)

    def frame(t: int) -> np.ndarray:
        image = background.copy()
        row, col = (3 * t) % 80, (7 * t) % 80
        image[row : row + 4, col : col + 4] = 255
        image[0, :8] = np.frombuffer(np.int64(t).tobytes(), dtype=np.uint8)  # every frame distinct, as a score
        return image

    t = 0
    stack = np.stack([frame(t)] * 4)
    for _ in range(count):
        t += 1
        next_stack = np.concatenate([stack[1:], frame(t)[None]])
        ended = rng.random() < 1.0 / mean_length
        yield stack, next_stack, ended
        stack = np.stack([frame(t)] * 4) if ended else next_stack


def atari_frames(args) -> dict:
    cpu = torch.device("cpu")
    capacity, dtype = args.capacity, np.dtype(np.uint8)
    # np.zeros reserves the pool without touching it: nbytes is what the full buffer holds
    uniform = ReplayBuffer(
        capacity, ATARI_STACK, dtype, ATARI_BATCH, cpu, 0, observations=FrameStackStore(capacity, ATARI_STACK, dtype)
    )
    per_uniform = uniform.nbytes / capacity
    del uniform
    prioritized = PrioritizedReplayBuffer(
        capacity,
        ATARI_STACK,
        dtype,
        ATARI_BATCH,
        cpu,
        0,
        alpha=0.6,
        beta=LinearSchedule(0.4, 1.0, 10**6),
        eps=1e-6,
        observations=FrameStackStore(capacity, ATARI_STACK, dtype),
    )
    per_prioritized = (prioritized.nbytes + sum(level.nbytes for level in prioritized.tree.levels)) / capacity
    del prioritized
    naive = 2 * int(np.prod(ATARI_STACK)) + 8 + 4 + 4
    print(
        f"Atari {ATARI_STACK} uint8 stacks, capacity {capacity:,}: bytes per transition uniform {per_uniform:.0f}, "
        f"prioritized {per_prioritized:.0f} (whole stacks twice: {naive}, {naive / per_uniform:.1f}x more); "
        f"full buffer {per_uniform * capacity / 1e9:.2f} GB"
    )

    fill = args.atari_fill
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(
        fill, ATARI_STACK, dtype, ATARI_BATCH, cpu, 0, observations=FrameStackStore(fill, ATARI_STACK, dtype)
    )
    pool = len(buffer.observations.frames)
    one = np.zeros(1, dtype=np.int64)
    start = time.perf_counter()
    for stack, next_stack, ended in atari_episode_steps(rng, fill):
        buffer.add(stack[None], one, one, next_stack[None], [ended])
    add_us = (time.perf_counter() - start) / fill * 1e6
    sample_us = microseconds(lambda: buffer.sample(step=0), max(50, args.repeats // 10))
    grew = "" if len(buffer.observations.frames) == pool else " (the frame pool grew)"
    print(
        f"Atari add() per transition {add_us:.1f} us, sample({ATARI_BATCH}) {sample_us:.1f} us, "
        f"pool frames used {buffer.observations.used:,} for {fill:,} transitions{grew}"
    )
    return {
        "title": f"{ATARI_STACK} uint8 stacks (FrameStackStore), {capacity:,} capacity; timings on {fill:,} "
        f"transitions of synthetic episodes",
        "columns": ["figure", "value"],
        "rows": [
            ["bytes per transition, uniform", f"{per_uniform:,.0f}"],
            ["bytes per transition, prioritized", f"{per_prioritized:,.0f}"],
            ["bytes per transition, whole stacks twice", f"{naive:,} ({naive / per_uniform:.1f}x)"],
            ["add() per transition", f"{add_us:.1f} µs"],
            [f"sample({ATARI_BATCH})", f"{sample_us:.1f} µs"],
        ],
    }


def resident_kib(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def save_memory_child(kind: str, capacity: int, filled: int) -> None:
    """In a fresh process: build and fill one buffer, save it as a checkpoint does, print the memory figures."""
    cpu, rng = torch.device("cpu"), np.random.default_rng(0)
    before_buffer = resident_kib("VmRSS")
    if kind == "atari":
        dtype = np.dtype(np.uint8)
        buffer = ReplayBuffer(
            capacity,
            ATARI_STACK,
            dtype,
            ATARI_BATCH,
            cpu,
            0,
            observations=FrameStackStore(capacity, ATARI_STACK, dtype),
        )
        one = np.zeros(1, dtype=np.int64)
        for stack, next_stack, ended in atari_episode_steps(rng, filled):
            buffer.add(stack[None], one, one, next_stack[None], [ended])
    else:
        buffer = ReplayBuffer(capacity, OBS_SHAPE, np.dtype(np.float32), BATCH, cpu, 0)
        fill(buffer, filled, rng)
        for array in (buffer.observations.obs, buffer.observations.next_obs, *buffer._fields().values()):
            array[filled:] = 0  # touch the unfilled rest too: the buffer's whole size is resident, as in a run
    before_save = resident_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    with tempfile.TemporaryDirectory() as folder:
        torch.save({"replay": buffer.state_dict()}, os.path.join(folder, "last.pt"))
        written = os.path.getsize(os.path.join(folder, "last.pt"))
    peak = resident_kib("VmHWM")
    print(
        buffer.nbytes,
        written,
        (before_save - before_buffer) * 1024,
        (peak - before_buffer) * 1024,
        (peak - before_save) * 1024,
    )


def save_memory(args) -> dict:
    cases = [
        ("uniform", args.capacity, args.capacity, f"LunarLander-sized, full ({args.capacity:,})"),
        ("uniform", args.capacity, args.capacity // 2, "LunarLander-sized, half full"),
        ("atari", args.atari_fill, args.atari_fill, f"Atari frame store, full ({args.atari_fill:,})"),
    ]
    print("checkpoint save, peak resident memory (fresh process each) / buffer size; target <= 1.1x")
    print(f"{'buffer':<40} {'buffer MB':>10} {'file MB':>8} {'resident':>9} {'peak':>6} {'save extra':>11}")
    rows = []
    for kind, capacity, filled, label in cases:
        out = subprocess.run(
            [sys.executable, __file__, "--save-child", kind, str(capacity), str(filled)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        nbytes, written, resident, peak, extra = (int(value) for value in out)
        print(
            f"{label:<40} {nbytes / 1e6:>10.1f} {written / 1e6:>8.1f} {resident / nbytes:>8.2f}x "
            f"{peak / nbytes:>5.2f}x {extra / nbytes:>10.2f}x"
        )
        rows.append(
            [
                label,
                f"{nbytes / 1e6:.1f}",
                f"{written / 1e6:.1f}",
                f"{resident / nbytes:.2f}x",
                f"{peak / nbytes:.2f}x",
                f"{extra / nbytes:.2f}x",
            ]
        )
    return {
        "title": "checkpoint save, peak resident memory (fresh process each) / buffer size",
        "columns": ["buffer", "buffer MB", "file MB", "resident", "peak", "save extra"],
        "rows": rows,
    }


if __name__ == "__main__":
    main()
