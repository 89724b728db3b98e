"""Does a pair learn, seed after seed? Train it on several seeds through rlrun's own sweep, then tabulate.

    python benchmarks/learning.py agent=per_dqn env=lunarlander --seeds 5 [--first-seed 0] [--jobs 2]
        [--threshold 200] [any other rlrun override ...]

Runs ``rlrun -m <overrides> seed=S,S+1,...`` (the joblib launcher runs ``--jobs`` seeds at a time), with a
greedy evaluation of 20 episodes every ``eval.every`` env steps (5,000 unless the tuned file or an override
says otherwise), reads each job's results.json
and prints per seed: env steps and wall seconds to the first evaluation at or above the threshold (the
env's registered ``reward_threshold`` unless ``--threshold``), the best and the final greedy evaluation,
then ``solved k/N, final k/N`` and the IQM and mean over seeds of the best and final evaluations with their 95%
intervals (rlrun.stats). The tuned settings of the pair apply as in any ``rlrun`` run.

Then ``--heldout N`` (default 100; 0 skips it) re-evaluates each seed's ``best.pt`` and its final policy
(``last.pt``) with ``rlrun mode=evaluate`` on N held-out episodes, whose seeds no periodic evaluation played
(so the checkpoint that those evaluations picked is not scored on the episodes that picked it), and prints their
mean returns and the share of episodes cut by the time limit: a hovering lander is not a landed one.

``--out PATH`` also writes the table as a result file (``results/learning/<env>_<agent>.json`` is where the docs
read it; the schema is in benchmarks/result_files.py and docs/contributing.md): the command, commit, date, machine
and one row per seed. ``--from-sweep DIR [DIR ...]`` trains nothing: it tabulates sweep folders this script made
before, reading each job's results.json and its heldout_best/ and heldout_last/ evaluations, which it runs
(``--heldout N``) for the jobs that lack them.
Several folders make one table when their jobs trained the same config on disjoint seeds (seeds 0-4 in one sweep and
5-9 in a later one, under another launcher if need be); the result file records each folder's command.

    python benchmarks/learning.py --from-sweep outputs/learning/per_dqn_lunarlander/<time> \\
        --out results/learning/lunarlander_per_dqn.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import result_files
from omegaconf import OmegaConf

from rlrun.config import AGENT_SCHEMAS, eval_step_cap

# eval.every is left to the config (5,000 env steps) and the tuned file: the LunarLander PPO/A2C files evaluate every
# 25k, since 20 episodes of up to 1,000 steps every 5k would cost more than the training (and replay unchanged
# weights: a PPO rollout there is 16,384 steps)
DEFAULT_OVERRIDES = ["eval.episodes=20", "device=cpu"]


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    parser.add_argument("--first-seed", type=int, default=0, help="first seed; the others follow (default 0)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(5, os.cpu_count() or 1),
        help="seeds trained at once by the joblib launcher (default: min(5, CPU count))",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="return that counts as solved (default: the env's reward_threshold)",
    )
    parser.add_argument(
        "--heldout",
        type=int,
        default=100,
        help="held-out episodes re-evaluating best.pt and the final policy of each seed (0: none)",
    )
    parser.add_argument(
        "--sweep-dir", default=None, help="where the runs go (default outputs/learning/<agent>_<env>/<time>)"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="also write the results as JSON here (e.g. results/learning/lunarlander_per_dqn.json)",
    )
    parser.add_argument(
        "--note",
        action="append",
        default=[],
        help="a sentence the result file keeps with the figures (repeatable), e.g. the machine's load",
    )
    parser.add_argument(
        "--target", default=None, help="the target the result is held to, kept in the result file (e.g. '4/5; 3/5')"
    )
    parser.add_argument(
        "--from-sweep",
        nargs="+",
        default=None,
        metavar="DIR",
        help="train nothing: tabulate these earlier sweep folders of learning.py (same config, disjoint seeds)",
    )
    args, overrides = parser.parse_known_args(argv)
    unknown = [item for item in overrides if item.startswith("--") or "=" not in item]
    if unknown:
        parser.error(f"not an option nor an rlrun override (key=value): {' '.join(unknown)}")
    if args.seeds < 1:
        parser.error(f"--seeds={args.seeds}: must be at least 1")
    if args.from_sweep and overrides:
        parser.error(f"--from-sweep reads the overrides from the sweep folder; drop {' '.join(overrides)}")
    if any(item.split("=", 1)[0] == "seed" for item in overrides):
        parser.error("give the seeds with --seeds and --first-seed, not seed=...")
    return args, overrides


def first_reach(results: dict, threshold: float) -> tuple[int | None, float | None]:
    """Env step and wall seconds of the first evaluation at or above ``threshold`` (None, None if never)."""
    seconds = results.get("eval_wall_seconds") or [math.nan] * len(results["eval_history"])
    for (step, mean), wall in zip(results["eval_history"], seconds):
        if mean >= threshold:
            return step, wall
    return None, None


def run_sweep(overrides: list[str], seeds: list[int], jobs: int, sweep_dir: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "rlrun",
        "-m",
        *DEFAULT_OVERRIDES,
        *overrides,
        f"seed={','.join(map(str, seeds))}",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.launcher.n_jobs={jobs}",
    ]
    print("running:", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def collect(sweep_dir: Path) -> dict[int, dict]:
    """results.json of each job, by seed (read from the job's saved config), with the job's folder."""
    by_seed = {}
    for results_file in sorted(sweep_dir.glob("*/results.json")):
        job_dir = results_file.parent
        seed = OmegaConf.load(job_dir / ".hydra" / "config.yaml").seed
        by_seed[int(seed)] = {**json.loads(results_file.read_text()), "job_dir": str(job_dir)}
    return by_seed


def trained_config(results: dict) -> dict:
    """What a job trained and how it was evaluated: its saved config less the seed (the one key a table's seeds may
    differ in) and ``plot`` (drawing only), with a null ``eval.max_episode_steps`` resolved to the cap it stands
    for (older configs saved the resolved value), and agent keys added since it was saved filled in with their
    schema defaults (what the job trained with: a key that did not exist then had its default's behaviour)."""
    saved = OmegaConf.load(Path(results["job_dir"]) / ".hydra" / "config.yaml")
    config = OmegaConf.to_container(saved)
    assert isinstance(config, dict)
    config["eval"]["max_episode_steps"] = eval_step_cap(saved)
    schema = AGENT_SCHEMAS.get(config["agent"].get("algo"))
    if schema is not None:
        config["agent"] = {**OmegaConf.to_container(OmegaConf.structured(schema)), **config["agent"]}
    for key in ("seed", "plot"):
        config.pop(key, None)
    return config


def mismatch(tabled: dict[int, dict], found: dict[int, dict]) -> str | None:
    """Why the jobs of another sweep folder cannot join the table so far (None: they can)."""
    if not tabled:
        return None
    shared = sorted(set(tabled) & set(found))
    if shared:
        return f"seeds {shared} are in an earlier folder too"
    first, other = trained_config(next(iter(tabled.values()))), trained_config(next(iter(found.values())))
    differing = sorted(key for key in first.keys() | other.keys() if first.get(key) != other.get(key))
    return f"its jobs trained another config (keys {', '.join(differing)} differ)" if differing else None


def hydra_quoted(key: str, value: str) -> str:
    """``key="value"``: sweep job folders hold ``=`` and ``,``, which Hydra's override grammar splits on."""
    return f'{key}="{value}"'


def held_out_score(report: dict) -> dict:
    return {
        "mean": report["mean"],
        "truncated_share": report["truncated_episodes"] / report["episodes"],
        "episodes": report["episodes"],
    }


def evaluate_held_out(job_dir: Path, checkpoint: str, episodes: int) -> dict:
    """``rlrun mode=evaluate`` of one checkpoint on held-out episodes (its default), read back from eval.json."""
    out_dir = job_dir / f"heldout_{Path(checkpoint).stem}"
    command = [
        sys.executable,
        "-m",
        "rlrun",
        "mode=evaluate",
        hydra_quoted("checkpoint", str(job_dir / checkpoint)),
        f"eval.episodes={episodes}",
        "device=cpu",
        hydra_quoted("hydra.run.dir", str(out_dir)),
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return held_out_score(json.loads((out_dir / "eval.json").read_text()))


def read_held_out(by_seed: dict[int, dict]) -> None:
    """Each seed's ``heldout`` from evaluations an earlier run of this script left in its job folder."""
    for results in by_seed.values():
        reports = {name: Path(results["job_dir"]) / f"heldout_{name}" / "eval.json" for name in ("best", "last")}
        if all(path.is_file() for path in reports.values()):
            results["heldout"] = {name: held_out_score(json.loads(path.read_text())) for name, path in reports.items()}


def add_held_out(by_seed: dict[int, dict], episodes: int, jobs: int) -> None:
    """Each seed's ``heldout``: best.pt and the final policy (last.pt) on ``episodes`` held-out episodes."""
    work = [(seed, name) for seed in by_seed for name in ("best", "last")]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        scores = pool.map(
            lambda item: evaluate_held_out(Path(by_seed[item[0]]["job_dir"]), f"checkpoints/{item[1]}.pt", episodes),
            work,
        )
        for (seed, name), score in zip(work, scores):
            by_seed[seed].setdefault("heldout", {})[name] = score


def table(by_seed: dict[int, dict], seeds: list[int], threshold: float) -> list[str]:
    """Per seed: time to threshold, best and final periodic evaluation and, where measured, the held-out scores."""
    held_out = any("heldout" in results for results in by_seed.values())
    header = "| seed | steps to threshold | seconds to threshold | best eval | final eval |"
    if held_out:
        header += " best.pt, held-out | final policy, held-out | final, cut at the time limit |"
    columns = header.count("|") - 1
    lines = [f"threshold {threshold:g}", header, "|" + "---|" * columns]
    solved = final_solved = held_out_solved = 0
    for seed in seeds:
        results = by_seed.get(seed)
        if results is None:
            lines.append(f"| {seed} | (job failed: see its failure.json) |" + " |" * (columns - 1))
            continue
        step, wall = first_reach(results, threshold)
        best, final = results["best_eval_return"], results["final_eval_return"]
        solved += step is not None
        final_solved += final >= threshold
        reach = ("-", "-") if step is None else (f"{step:,}", f"{wall:.0f}")
        row = f"| {seed} | {reach[0]} | {reach[1]} | {best:.1f} | {final:.1f} |"
        if held_out:
            scores = results["heldout"]
            held_out_solved += scores["last"]["mean"] >= threshold
            row += (
                f" {scores['best']['mean']:.1f} | {scores['last']['mean']:.1f} |"
                f" {100 * scores['last']['truncated_share']:.0f}% |"
            )
        lines.append(row)
    summary = f"solved {solved}/{len(seeds)}, final {final_solved}/{len(seeds)}"
    if held_out:
        summary += f", final policy held-out >= threshold {held_out_solved}/{len(seeds)}"
    lines.append(summary)
    return lines


def interval_lines(by_seed: dict[int, dict]) -> list[str]:
    """IQM and mean over the seeds that finished, with 95% stratified bootstrap intervals (rlrun.stats), of the
    best and the final greedy evaluation and, where measured, of the final policy's held-out mean."""
    from rlrun.stats import interval_estimates

    scores = {
        "best eval": [r["best_eval_return"] for r in by_seed.values()],
        "final eval": [r["final_eval_return"] for r in by_seed.values()],
        "final policy, held-out": [r["heldout"]["last"]["mean"] for r in by_seed.values() if "heldout" in r],
    }
    lines = [f"over {len(by_seed)} seeds, 95% stratified bootstrap CI:"]
    for name, values in scores.items():
        estimates = interval_estimates(values)
        if estimates:
            lines.append(f"{name}: IQM {estimates['iqm']}, mean {estimates['mean']}")
    return lines if len(lines) > 1 else []


def sweep_overrides(sweep_dir: Path) -> tuple[list[str], int | None]:
    """The overrides an earlier learning.py sweep was given (from its multirun.yaml, less the seeds and folders),
    and its ``--jobs`` (None if not recorded)."""
    recorded = OmegaConf.load(sweep_dir / "multirun.yaml").hydra.overrides
    task = list(recorded.task)
    jobs = next(
        (int(item.split("=", 1)[1]) for item in [*recorded.hydra, *task] if item.startswith("hydra.launcher.n_jobs=")),
        None,
    )
    return [
        item
        for item in task
        if item.split("=", 1)[0] not in ("seed", "hydra.sweep.dir", "hydra.launcher.n_jobs")
        and item not in DEFAULT_OVERRIDES
    ], jobs


def training_command(overrides: list[str], seeds: list[int], jobs: int | None) -> str:
    return " ".join(
        [
            "python benchmarks/learning.py",
            *overrides,
            f"--seeds {len(seeds)}",
            *([f"--first-seed {seeds[0]}"] if seeds[0] else []),
            *([f"--jobs {jobs}"] if jobs else []),
        ]
    )


def result_document(
    by_seed: dict[int, dict],
    seeds: list[int],
    threshold: float,
    sweeps: list[tuple[list[str], list[int], int | None]],
    args: argparse.Namespace,
) -> dict:
    """The run as a result file (benchmarks/result_files.py): what produced it (each sweep's overrides, seeds and
    --jobs), and one row per finished seed."""
    overrides = sweeps[0][0]
    first_job = Path(next(iter(by_seed.values()))["job_dir"])
    config = OmegaConf.load(first_job / ".hydra" / "config.yaml")
    trained_by = "; ".join(
        training_command(sweep_overrides_, sweep_seeds, jobs) for sweep_overrides_, sweep_seeds, jobs in sweeps
    )
    document = {
        "schema": result_files.SCHEMAS["learning"],
        **result_files.provenance_fields(trained_by),
        "env": str(config.env.name),
        "agent": str(config.agent.name),
        "env_id": str(config.env.id),
        "tuned_file": f"conf/tuned/{config.tuned_settings}.yaml" if config.tuned_settings else None,
        "overrides": overrides,
        "threshold": threshold,
        "total_steps": int(config.total_steps),
        "eval": {"every": int(config.eval.every), "episodes": int(config.eval.episodes)},
        "target": args.target or "-",
        "notes": list(args.note),
    }
    if args.from_sweep:
        newest = max((Path(r["job_dir"]) / "results.json").stat().st_mtime for r in by_seed.values())
        document["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(newest))
        document["commit"] = None
        document["commit_note"] = "tabulated from a sweep folder, which records no commit"
        shown = [f"--from-sweep {' '.join(args.from_sweep)}", *([f"--out {args.out}"] if args.out else [])]
        document["provenance"] = (
            f"measured: tabulated without retraining by python benchmarks/learning.py "
            f"{' '.join(shown)} (date: the sweep's last results.json; machine: the one that "
            f"tabulated it)"
        )
    rows = []
    for seed in seeds:
        results = by_seed.get(seed)
        if results is None:
            continue
        step, wall = first_reach(results, threshold)
        held = results.get("heldout", {})
        rows.append(
            {
                "seed": seed,
                "solved_at_step": step,
                "solved_at_seconds": None if step is None else wall,
                "best_eval": results["best_eval_return"],
                "final_eval": results["final_eval_return"],
                "heldout_best": held.get("best", {}).get("mean"),
                "heldout_final": held.get("last", {}).get("mean"),
                "heldout_final_truncated_share": held.get("last", {}).get("truncated_share"),
                "heldout_episodes": held.get("last", {}).get("episodes"),
                "steps": results["steps"],
                "wall_seconds": results.get("wall_seconds"),
                "job": Path(results["job_dir"]).name,
            }
        )
    document["seeds"] = rows
    document["failed_seeds"] = [seed for seed in seeds if seed not in by_seed]
    return document


def main(argv: list[str]) -> int:
    args, overrides = parse_args(argv)
    if args.from_sweep:
        by_seed, sweeps = {}, []
        for folder in map(Path, args.from_sweep):
            found = collect(folder)
            if not found:
                print(f"{folder}: no job folder with results.json", file=sys.stderr)
                return 2
            problem = mismatch(by_seed, found)
            if problem:
                print(f"{folder}: {problem}; --from-sweep tables one config over disjoint seeds", file=sys.stderr)
                return 2
            by_seed.update(found)
            sweep_dir = folder
            folder_overrides, jobs = sweep_overrides(folder)
            sweeps.append((folder_overrides, sorted(found), jobs))
        overrides = sweeps[0][0]
        seeds = sorted(by_seed)
        read_held_out(by_seed)
        missing = {seed: results for seed, results in by_seed.items() if "heldout" not in results}
        if args.heldout and missing:  # e.g. a sweep stopped before this script's held-out evaluations
            print(f"held-out evaluations of seeds {sorted(missing)}, which their folders lack", flush=True)
            add_held_out(missing, args.heldout, args.jobs)
    else:
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        choices = dict(item.split("=", 1) for item in overrides)
        name = f"{choices.get('agent', 'dqn')}_{choices.get('env', 'cartpole')}"
        sweep_dir = Path(args.sweep_dir or Path("outputs") / "learning" / name / time.strftime("%Y-%m-%d_%H-%M-%S"))
        run_sweep(overrides, seeds, args.jobs, sweep_dir)
        by_seed = collect(sweep_dir)
        sweeps = [(overrides, seeds, args.jobs)]
        if args.heldout:
            add_held_out(by_seed, args.heldout, args.jobs)
    threshold = args.threshold
    if threshold is None:
        thresholds = {results.get("solved_at_return") for results in by_seed.values()} - {None}
        if len(thresholds) != 1:
            print(f"the env has no single reward_threshold ({thresholds or 'none'}): pass --threshold", file=sys.stderr)
            return 2
        threshold = thresholds.pop()
    print(f"{' '.join(overrides) or 'defaults (agent=dqn env=cartpole)'}, seeds {seeds[0]}-{seeds[-1]} ({sweep_dir})")
    print("\n".join(table(by_seed, seeds, threshold) + interval_lines(by_seed)))
    if args.out:
        result_files.write(Path(args.out), result_document(by_seed, seeds, threshold, sweeps, args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
