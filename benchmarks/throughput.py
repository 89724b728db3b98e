"""Training throughput of rlrun's DQN, in env steps per second, on a fixed piece of work.

Work (fixed by the Foundation issue): DQN, MLP 2x128 ReLU, batch 64, Adam 1e-3, buffer 10,000,
learning starts 1,000, hard target update every 500 steps, linear epsilon 1.0 -> 0.05 over 10,000
steps, 30,000 env steps; CartPole-v1 and LunarLander-v3; train_freq 1 and 4. Evaluation and
checkpoints are pushed past the end, leaving one final 1-episode evaluation (well under 1% of the
time); TensorBoard logging stays on.

    python benchmarks/throughput.py [--steps 30000] [--envs cartpole lunarlander] [--train-freqs 1 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_module

from rlrun.config import register_configs, validate
from rlrun.loop import Trainer

FIXED_WORK = [
    "agent=dqn", "agent.hidden_sizes=[128,128]", "agent.batch_size=64", "agent.lr=1e-3",
    "buffer.capacity=10000", "agent.learning_starts=1000", "agent.target_update=hard",
    "agent.target_update_every=500", "schedule=linear", "schedule.start=1.0", "schedule.end=0.05",
    "schedule.duration=10000", "device=cpu", "agent.gradient_steps=1",
]


def measure(env: str, train_freq: int, steps: int) -> float:
    overrides = FIXED_WORK + [f"env={env}", f"agent.train_freq={train_freq}", f"total_steps={steps}",
                              f"eval.every={10 * steps}", f"save_every={10 * steps}", "eval.episodes=1"]
    cfg = compose("config", overrides=overrides)
    validate(cfg)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, Path(run_dir))
        start = time.perf_counter()
        trainer.run()
        return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--envs", nargs="+", default=["cartpole", "lunarlander"])
    parser.add_argument("--train-freqs", nargs="+", type=int, default=[1, 4])
    args = parser.parse_args()
    register_configs()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"{'env':<12} {'train_freq':>10} {'steps':>8} {'steps/s':>9}")
    with initialize_config_module("rlrun.conf", version_base=None):
        for env in args.envs:
            for train_freq in args.train_freqs:
                sps = measure(env, train_freq, args.steps)
                print(f"{env:<12} {train_freq:>10} {args.steps:>8} {sps:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
