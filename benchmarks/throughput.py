"""Training throughput in env steps per second on a fixed piece of work, rlrun against Stable-Baselines3.

Work (fixed by the Foundation issue): DQN, MLP 2x128 ReLU, batch 64, Adam 1e-3, Huber loss, gradient
norm clipped at 10, buffer 10,000, learning starts 1,000, hard target update every 500 env steps, linear
epsilon 1.0 -> 0.05 over 10,000 steps, 30,000 env steps; CartPole-v1 and LunarLander-v3; train_freq 1
and 4; device cpu, 1 torch thread.

rlrun runs through the same ``Trainer`` and config the CLI uses (evaluation and checkpoints pushed past
the end, leaving one final 1-episode evaluation and one checkpoint; TensorBoard logging stays on).
``--compare sb3`` also runs Stable-Baselines3's DQN on the same work (``pip install -e .[bench]``), with
the env passed as an instance, and computes the machine limit from micro-timings taken in the same
run: env step + greedy act (one observation through the ``nn.Module``) + one plain-Adam update /
train_freq, each timed alone. Runners alternate within each repetition, so a machine that gets slower
or faster mid-run affects all of them alike; each cell is the median over ``--repeats``.

The PPO cell (``--algos ppo``, on by default) times rlrun's ``agent=ppo`` against SB3's PPO on one fixed piece
of work, the same in both: 8 sub-envs, rollouts of 256 steps per sub-env, 4 epochs of minibatches of 64,
separate policy and value MLPs of 64x64 tanh, Adam 3e-4, gamma 0.99, GAE lambda 0.95, clip 0.2, no entropy
bonus, value weight 0.5, gradient norm 0.5, no normalisation of observations or rewards, ``--ppo-steps`` env steps.

    python benchmarks/throughput.py --compare sb3 [--steps 30000] [--repeats 3] [--num-envs 1 8] [--algos dqn ppo]
    python benchmarks/throughput.py --profile [--agents dqn] [--envs cartpole] [--train-freqs 4]

``--profile`` runs each cell once under cProfile instead and prints where an env step's time goes.
``--updates`` times one DQN gradient step instead: rlrun's ``learn()`` (the MLP's hand-written backward,
rlrun.networks.QNetworkGradients) against the same step through autograd (the same loss, fused Adam, clipping),
alternating, for the fixed work's net (2x128, batch 64) and the LunarLander file's (2x256, batch 128).
``--out PATH`` also writes the two tables as a result file (e.g. results/performance/throughput.json; schema in
benchmarks/result_files.py), with the command, commit, date and machine, for the docs' Performance page.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import result_files
import torch
from hydra import compose, initialize_config_module
from torch import nn

from rlrun.agents.dqn import DQNAgent, td_targets
from rlrun.buffers import ReplayBuffer
from rlrun.config import DQNConfig, register_configs, validate
from rlrun.loop import Trainer
from rlrun.networks import QNetwork

ENV_IDS = {"cartpole": "CartPole-v1", "lunarlander": "LunarLander-v3"}
HIDDEN, BATCH, LR, CAPACITY, LEARNING_STARTS, TARGET_EVERY, EPS_STEPS = [128, 128], 64, 1e-3, 10_000, 1000, 500, 10_000
FIXED_WORK = [
    "~tuned",  # the fixed work, not a pair's tuned settings (those would add n-step returns, other batch sizes)
    f"agent.hidden_sizes=[{HIDDEN[0]},{HIDDEN[1]}]",
    f"agent.batch_size={BATCH}",
    f"agent.lr={LR}",
    f"buffer.capacity={CAPACITY}",
    f"agent.learning_starts={LEARNING_STARTS}",
    "agent.target_update=hard",
    f"agent.target_update_every={TARGET_EVERY}",
    "schedule=linear",
    "schedule.start=1.0",
    "schedule.end=0.05",
    f"schedule.duration={EPS_STEPS}",
    "device=cpu",
    "device.threads=1",
    "agent.gradient_steps=1",
    "agent.loss=huber",
    "agent.max_grad_norm=10",
    "agent.gamma=0.99",
]


# The PPO cell's fixed work (see the module docstring); SB3's PPO defaults match it apart from n_steps and n_epochs.
PPO_ENVS, PPO_N_STEPS, PPO_BATCH, PPO_EPOCHS, PPO_HIDDEN, PPO_LR = 8, 256, 64, 4, [64, 64], 3e-4
PPO_FIXED_WORK = [
    "~tuned",
    "agent=ppo",
    f"env.num_envs={PPO_ENVS}",
    f"agent.n_steps={PPO_N_STEPS}",
    f"agent.batch_size={PPO_BATCH}",
    f"agent.n_epochs={PPO_EPOCHS}",
    f"agent.hidden_sizes=[{PPO_HIDDEN[0]},{PPO_HIDDEN[1]}]",
    "agent.activation=tanh",
    f"agent.lr={PPO_LR}",
    "agent.gamma=0.99",
    "agent.gae_lambda=0.95",
    "agent.clip_range=0.2",
    "agent.ent_coef=0.0",
    "agent.vf_coef=0.5",
    "agent.max_grad_norm=0.5",
    "agent.normalize_obs=false",
    "agent.normalize_reward=false",
    "device=cpu",
    "device.threads=1",
]


def rlrun_steps_per_second(
    agent: str, env: str, train_freq: int, steps: int, num_envs: int, profiler: cProfile.Profile | None = None
) -> tuple[float, float]:
    overrides = FIXED_WORK + [
        f"agent={agent}",
        f"env={env}",
        f"env.num_envs={num_envs}",
        f"agent.train_freq={train_freq}",
    ]
    return trainer_steps_per_second(overrides, steps, profiler)


def trainer_steps_per_second(
    overrides: list[str], steps: int, profiler: cProfile.Profile | None = None
) -> tuple[float, float]:
    """Wall and CPU env steps per second of one Trainer run of ``steps``, evaluation and checkpoints at the end only."""
    overrides = overrides + [
        f"total_steps={steps}",
        f"eval.every={10 * steps}",
        f"save_every={10 * steps}",
        "eval.episodes=1",
    ]
    cfg = compose("config", overrides=overrides)
    validate(cfg)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, Path(run_dir))
        start, start_cpu = time.perf_counter(), time.process_time()
        if profiler is None:
            trainer.run()
        else:
            profiler.runcall(trainer.run)
        return trainer.step / (time.perf_counter() - start), trainer.step / (time.process_time() - start_cpu)


# (label, file suffix, function name): where an env step's time goes, by cumulative time
PROFILE_PARTS = [
    ("act (epsilon-greedy)", "rlrun/agents/dqn.py", "act"),
    ("env step (vector env)", "rlrun/envs.py", "step"),
    ("observe (replay add)", "rlrun/agents/dqn.py", "observe"),
    ("update: sample", "rlrun/buffers/replay.py", "sample"),
    ("update: learn (forward, backward, Adam)", "rlrun/agents/dqn.py", "learn"),
    ("update, all (incl. target copies)", "rlrun/agents/dqn.py", "update"),
    ("TensorBoard scalars", "rlrun/logger.py", "scalars"),
    ("final evaluation + checkpoint", "rlrun/loop.py", "evaluate"),
    ("whole run", "rlrun/loop.py", "run"),
]


def print_profile(profiler: cProfile.Profile, steps: int, label: str) -> None:
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (calls, primitive calls, tottime, cumtime, callers)}
    print(f"profile of {label} ({steps} env steps; cProfile inflates small calls, so read shares, not absolutes)")
    whole = max(value[3] for key, value in stats.items() if key[0].endswith("rlrun/loop.py") and key[2] == "run")
    for name, suffix, function in PROFILE_PARTS:
        cumulative = sum(value[3] for key, value in stats.items() if key[0].endswith(suffix) and key[2] == function)
        print(f"  {name:<42} {cumulative / steps * 1e6:8.1f} us/step {100 * cumulative / whole:5.1f}%")


def timed_learn(model, steps: int) -> tuple[float, float]:
    """Wall and CPU env steps per second of an SB3 model's ``learn`` of ``steps``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=steps)
    return model.num_timesteps / (time.perf_counter() - start), model.num_timesteps / (time.process_time() - start_cpu)


def sb3_steps_per_second(env: str, train_freq: int, steps: int, num_envs: int) -> tuple[float, float]:
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env

    env_id = ENV_IDS[env]
    # One env: passed as an instance. Several: SB3 collects one vector step per train_freq unit, so
    # num_envs / train_freq gradient steps per vector step give the same updates per env step as rlrun.
    if num_envs == 1:
        vec_env, sb3_train_freq, gradient_steps = gym.make(env_id), train_freq, 1
    else:
        vec_env = make_vec_env(env_id, n_envs=num_envs, seed=0)
        sb3_train_freq, gradient_steps = 1, num_envs // train_freq
    model = DQN(
        "MlpPolicy",
        vec_env,
        learning_rate=LR,
        buffer_size=CAPACITY,
        learning_starts=LEARNING_STARTS,
        batch_size=BATCH,
        tau=1.0,
        gamma=0.99,
        train_freq=sb3_train_freq,
        gradient_steps=gradient_steps,
        target_update_interval=TARGET_EVERY,
        exploration_fraction=EPS_STEPS / steps,
        exploration_initial_eps=1.0,
        exploration_final_eps=0.05,
        max_grad_norm=10,
        policy_kwargs={"net_arch": HIDDEN},
        device="cpu",
        seed=0,
        verbose=0,
    )
    return timed_learn(model, steps)


def sb3_ppo_steps_per_second(env: str, steps: int) -> tuple[float, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    vec_env = make_vec_env(ENV_IDS[env], n_envs=PPO_ENVS, seed=0)
    model = PPO(
        "MlpPolicy",
        vec_env,
        learning_rate=PPO_LR,
        n_steps=PPO_N_STEPS,
        batch_size=PPO_BATCH,
        n_epochs=PPO_EPOCHS,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs={"net_arch": {"pi": PPO_HIDDEN, "vf": PPO_HIDDEN}, "activation_fn": nn.Tanh},
        device="cpu",
        seed=0,
        verbose=0,
    )
    return timed_learn(model, steps)


def ppo_rows(args) -> list[dict]:
    """rlrun's PPO against SB3's on the fixed PPO work, interleaved per repetition like the DQN cells."""
    rows = []
    for env in args.envs:
        wall: dict[str, list[float]] = {"rlrun ppo": [], "sb3 ppo": []}
        cpu: dict[str, list[float]] = {"rlrun ppo": [], "sb3 ppo": []}
        for _ in range(args.repeats):
            for runner in wall:
                wall_sps, cpu_sps = (
                    sb3_ppo_steps_per_second(env, args.ppo_steps)
                    if runner == "sb3 ppo"
                    else trainer_steps_per_second(PPO_FIXED_WORK + [f"env={env}"], args.ppo_steps)
                )
                wall[runner].append(wall_sps)
                cpu[runner].append(cpu_sps)
        print(
            f"  ppo {env} num_envs={PPO_ENVS}, wall|cpu steps/s: "
            + ", ".join(
                f"{runner} " + " ".join(f"{w:.0f}|{c:.0f}" for w, c in zip(wall[runner], cpu[runner]))
                for runner in wall
            ),
            flush=True,
        )
        rows.append(
            {
                "env": env,
                "wall": {r: statistics.median(v) for r, v in wall.items()},
                "cpu": {r: statistics.median(v) for r, v in cpu.items()},
            }
        )
    return rows


def ppo_tables(rows: list[dict], args) -> list[dict]:
    """The PPO cell, per wall-clock and per CPU second, as tables (printed, and kept by --out)."""
    out = []
    for clock in ("wall", "cpu"):
        title = (
            f"PPO, env steps per {'wall-clock' if clock == 'wall' else 'CPU'} second, median of {args.repeats}, "
            f"{args.ppo_steps} steps per run, {PPO_ENVS} sub-envs, n_steps {PPO_N_STEPS}, {PPO_EPOCHS} epochs, "
            f"minibatch {PPO_BATCH}"
        )
        body = [
            [
                row["env"],
                f"{row[clock]['rlrun ppo']:,.0f}",
                f"{row[clock]['sb3 ppo']:,.0f}",
                f"{row[clock]['rlrun ppo'] / row[clock]['sb3 ppo']:.2f}",
            ]
            for row in rows
        ]
        out.append({"title": title, "columns": ["env", "rlrun ppo", "sb3 ppo", "rlrun/sb3"], "rows": body})
    return out


def microseconds(fn, repeats: int) -> float:
    """CPU microseconds per call: on a shared machine, wall time would measure the neighbours too."""
    for _ in range(min(100, repeats)):
        fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats * 1e6


def machine_limit_parts(env: str, num_envs: int, repeats: int = 2000) -> dict[str, float]:
    """Microseconds per env step, per greedy act (batched over num_envs, per env) and per plain-Adam update."""
    gym_env = gym.make(ENV_IDS[env])
    gym_env.reset(seed=0)
    n_actions = gym_env.action_space.n
    random_actions = np.random.default_rng(0).integers(0, n_actions, repeats + 100)
    counter = iter(range(10**9))

    def env_step():
        _, _, terminated, truncated, _ = gym_env.step(int(random_actions[next(counter) % len(random_actions)]))
        if terminated or truncated:
            gym_env.reset()

    env_us = microseconds(env_step, repeats)
    obs_dim = gym_env.observation_space.shape[0]
    online, target = QNetwork(obs_dim, n_actions, HIDDEN), QNetwork(obs_dim, n_actions, HIDDEN)
    obs = np.random.default_rng(1).standard_normal((num_envs, obs_dim)).astype(np.float32)

    @torch.inference_mode()
    def greedy_act():
        return online(torch.as_tensor(obs)).argmax(dim=1).numpy()

    act_us = microseconds(greedy_act, repeats) / num_envs
    rng = np.random.default_rng(2)
    store_obs = rng.standard_normal((CAPACITY, obs_dim)).astype(np.float32)
    store_actions = rng.integers(0, n_actions, CAPACITY)
    store_rewards = rng.standard_normal(CAPACITY).astype(np.float32)
    store_done = (rng.random(CAPACITY) < 0.02).astype(np.float32)
    optimizer = torch.optim.Adam(online.parameters(), lr=LR)  # plain: no fused or foreach kernels on CPU

    def update():
        idx = rng.integers(0, CAPACITY, BATCH)
        o, a = torch.from_numpy(store_obs[idx]), torch.from_numpy(store_actions[idx])
        r, d = torch.from_numpy(store_rewards[idx]), torch.from_numpy(store_done[idx])
        next_o = torch.from_numpy(store_obs[(idx + 1) % CAPACITY])
        with torch.no_grad():
            y = r + 0.99 * (1 - d) * target(next_o).max(dim=1).values
        q = online(o).gather(1, a.unsqueeze(1)).squeeze(1)
        loss = nn.functional.smooth_l1_loss(q, y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(online.parameters(), 10)
        optimizer.step()

    update_us = microseconds(update, max(300, repeats // 5))
    gym_env.close()
    return {"env_us": env_us, "act_us": act_us, "update_us": update_us}


def machine_limit(parts: dict[str, float], train_freq: int) -> float:
    return 1e6 / (parts["env_us"] + parts["act_us"] + parts["update_us"] / train_freq)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--envs", nargs="+", default=["cartpole", "lunarlander"], choices=sorted(ENV_IDS))
    parser.add_argument("--train-freqs", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--agents", nargs="+", default=["dqn", "per_dqn"], help="rlrun agent presets to time")
    parser.add_argument("--num-envs", nargs="+", type=int, default=[1], help="env.num_envs values to time")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell and runner; the median is shown")
    parser.add_argument("--compare", choices=["sb3"], default=None, help="also time Stable-Baselines3's DQN")
    parser.add_argument("--profile", action="store_true", help="one cProfile'd run per cell: where the time goes")
    parser.add_argument(
        "--updates", action="store_true", help="time one DQN gradient step, hand-written backward against autograd"
    )
    parser.add_argument(
        "--algos",
        nargs="+",
        default=["dqn", "ppo"],
        choices=["dqn", "ppo"],
        help="with --compare sb3: the DQN cells, the PPO cell, or both (default)",
    )
    parser.add_argument("--ppo-steps", type=int, default=40_960, help="env steps per PPO run (default 20 rollouts)")
    parser.add_argument("--out", default=None, help="also write the tables as a result file (JSON) here")
    parser.add_argument("--note", action="append", default=[], help="a sentence the result file keeps (repeatable)")
    args = parser.parse_args()
    if args.out and args.profile:
        parser.error("--out writes the throughput tables; --profile prints a profile, which has no result file")
    torch.set_num_threads(1)
    register_configs()
    print(f"command: python {' '.join(sys.argv)}", flush=True)
    if args.updates:
        measured = [update_table(args.repeats)]
        print_tables(measured)
        if args.out:
            write_result(args, measured, rows=[])
        return
    if args.profile:
        with initialize_config_module("rlrun.conf", version_base=None):
            for num_envs in args.num_envs:
                for env in args.envs:
                    for train_freq in args.train_freqs:
                        for agent in args.agents:
                            profiler = cProfile.Profile()
                            sps, _ = rlrun_steps_per_second(agent, env, train_freq, args.steps, num_envs, profiler)
                            print_profile(
                                profiler,
                                args.steps,
                                f"rlrun {agent} {env} tf={train_freq} num_envs="
                                f"{num_envs}: {sps:.0f} steps/s under cProfile",
                            )
        return
    runners = [f"rlrun {agent}" for agent in args.agents] + (["sb3 dqn"] if args.compare else [])
    rows, ppo = [], []
    with initialize_config_module("rlrun.conf", version_base=None):
        if args.compare and "ppo" in args.algos:
            ppo = ppo_rows(args)
        for num_envs in args.num_envs if "dqn" in args.algos else []:
            for env in args.envs:
                for train_freq in args.train_freqs:
                    wall: dict[str, list[float]] = {runner: [] for runner in runners}
                    cpu: dict[str, list[float]] = {runner: [] for runner in runners}
                    limits, all_parts = [], []
                    for _ in range(args.repeats):
                        for runner in runners:  # interleaved: each repetition runs every runner once
                            family, agent = runner.split()
                            wall_sps, cpu_sps = (
                                sb3_steps_per_second(env, train_freq, args.steps, num_envs)
                                if family == "sb3"
                                else rlrun_steps_per_second(agent, env, train_freq, args.steps, num_envs)
                            )
                            wall[runner].append(wall_sps)
                            cpu[runner].append(cpu_sps)
                        if args.compare:  # the limit's micro-timings too, between the runs they bound
                            all_parts.append(machine_limit_parts(env, num_envs))
                            limits.append(machine_limit(all_parts[-1], train_freq))
                    row = {
                        "num_envs": num_envs,
                        "env": env,
                        "train_freq": train_freq,
                        "wall": {runner: statistics.median(values) for runner, values in wall.items()},
                        "cpu": {runner: statistics.median(values) for runner, values in cpu.items()},
                    }
                    if args.compare:
                        row["limit"] = statistics.median(limits)
                        row["parts"] = {key: statistics.median(p[key] for p in all_parts) for key in all_parts[0]}
                    rows.append(row)
                    print(
                        f"  {env} tf={train_freq} num_envs={num_envs}, wall|cpu steps/s: "
                        + ", ".join(
                            f"{runner} " + " ".join(f"{w:.0f}|{c:.0f}" for w, c in zip(wall[runner], cpu[runner]))
                            for runner in runners
                        )
                        + (f", limit {' '.join(f'{v:.0f}' for v in limits)}" if limits else ""),
                        flush=True,
                    )
    measured = (tables(rows, runners, args) if rows else []) + (ppo_tables(ppo, args) if ppo else [])
    print_tables(measured)
    if args.compare and rows:
        print("\nmachine limit = 1e6 / (env step + greedy act + plain-Adam update / tf), CPU us, medians:")
        for row in rows:
            parts = row["parts"]
            print(
                f"  {row['env']} num_envs={row['num_envs']} tf={row['train_freq']}: env step {parts['env_us']:.1f}, "
                f"act {parts['act_us']:.1f} (per env), update {parts['update_us']:.0f}"
            )
    if args.out:
        write_result(args, measured, rows, ppo)


def print_tables(measured: list[dict]) -> None:
    for table in measured:
        print(f"\n{table['title']}")
        print("| " + " | ".join(table["columns"]) + " |")
        print("|" + "---|" * len(table["columns"]))
        for cells in table["rows"]:
            print("| " + " | ".join(cells) + " |")


def write_result(args, measured: list[dict], rows: list[dict], ppo: list[dict] | None = None) -> None:
    document = {
        "schema": result_files.SCHEMAS["performance"],
        "benchmark": "throughput",
        **result_files.provenance_fields(f"python benchmarks/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:])),
        "tables": measured,
        "notes": list(args.note),
        "rows": rows,
        "ppo_rows": ppo or [],
    }
    result_files.write(Path(args.out), document)


def update_table(repeats: int) -> dict:
    """CPU microseconds per DQN gradient step (median over ``repeats`` rounds of 300 steps, the two alternating):
    rlrun's learn() against the same step through autograd, on one fixed batch of random transitions."""
    return {
        "title": "One DQN gradient step (Huber loss, clipping at 10, fused Adam, 1 thread), CPU microseconds",
        "columns": ["MLP", "batch", "rlrun learn()", "through autograd", "autograd / rlrun"],
        "rows": [update_row(HIDDEN, BATCH, repeats), update_row([256, 256], 128, repeats)],
    }


def update_row(hidden: list[int], batch_size: int, repeats: int) -> list[str]:
    agent = DQNAgent(
        DQNConfig(hidden_sizes=hidden, batch_size=batch_size, lr=LR, max_grad_norm=10, loss="huber"),
        (8,),
        4,
        ReplayBuffer(CAPACITY, (8,), np.dtype(np.float32), batch_size, torch.device("cpu"), 0),
        lambda step, episode: 0.05,
        torch.device("cpu"),
        0,
    )
    rng = np.random.default_rng(0)
    for _ in range(2 * batch_size):
        obs, next_obs = rng.standard_normal((2, 1, 8)).astype(np.float32)
        agent.observe(obs, rng.integers(0, 4, 1), rng.standard_normal(1), next_obs, rng.random(1) < 0.05, [False])
    batch = agent.buffer.sample(0)
    online, target = copy.deepcopy(agent.online), copy.deepcopy(agent.target)
    parameters = list(online.parameters())
    optimizer = torch.optim.Adam(parameters, lr=LR, fused=True)
    huber = nn.HuberLoss(reduction="none")

    def autograd_step() -> None:
        q_taken = online(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        targets = td_targets(batch.rewards, batch.next_obs, batch.terminated, online, target, batch.discounts, False)
        loss = (batch.weights * huber(q_taken, targets)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, 10)
        optimizer.step()

    times: dict[str, list[float]] = {"rlrun": [], "autograd": []}
    for _ in range(repeats):
        times["rlrun"].append(microseconds(lambda: agent.learn(batch), 300))
        times["autograd"].append(microseconds(autograd_step, 300))
    mine, theirs = statistics.median(times["rlrun"]), statistics.median(times["autograd"])
    width = f"{hidden[0]}x{hidden[1]}"
    print(
        f"  {width} batch {batch_size}: rlrun {' '.join(f'{t:.0f}' for t in times['rlrun'])}, "
        f"autograd {' '.join(f'{t:.0f}' for t in times['autograd'])}",
        flush=True,
    )
    return [width, str(batch_size), f"{mine:.0f}", f"{theirs:.0f}", f"{theirs / mine:.2f}"]


def tables(rows: list[dict], runners: list[str], args) -> list[dict]:
    """Two tables: steps per wall-clock second, and per CPU second of the process (steadier on a shared machine)."""
    first = runners[0]
    out = []
    for clock in ("wall", "cpu"):
        title = (
            f"env steps per {'wall-clock' if clock == 'wall' else 'CPU'} second, median of {args.repeats}, "
            f"{args.steps} steps per run"
        )
        header = ["num_envs", "env", "tf"] + runners
        if "rlrun per_dqn" in runners and first == "rlrun dqn":
            header.append("per/dqn")
        if args.compare:
            header += [f"{first}/sb3", "limit", f"{first}/limit"]
        body = []
        for row in rows:
            sps = row[clock]
            cells = [str(row["num_envs"]), row["env"], str(row["train_freq"])] + [f"{sps[r]:,.0f}" for r in runners]
            if "per/dqn" in header:
                cells.append(f"{sps['rlrun per_dqn'] / sps['rlrun dqn']:.2f}")
            if args.compare:
                cells += [
                    f"{sps[first] / sps['sb3 dqn']:.2f}",
                    f"{row['limit']:,.0f}",
                    f"{sps[first] / row['limit']:.2f}",
                ]
            body.append(cells)
        out.append({"title": title, "columns": header, "rows": body})
    return out


if __name__ == "__main__":
    main()
