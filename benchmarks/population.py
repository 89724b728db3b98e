"""A seed sweep under the joblib launcher, then the same sweep under the population launcher, back to back.

    python benchmarks/population.py [--envs cartpole lunarlander] [--seeds 8] [--steps N] [--jobs J]
        [--out outputs/benchmarks/population/<time>] [any other rlrun override ...]

For each env, runs ``rlrun -m seed=range(N) env=E agent=dqn`` (the tuned settings of the pair apply: CartPole 50k
env steps, LunarLander 300k; ``--steps`` shortens both) with ``hydra/launcher=joblib``, then with
``hydra/launcher=population``, on the same cores (``--jobs`` processes at once for both: joblib's jobs, or
populations of ``--members`` seeds, by default the seeds spread evenly over the processes). Prints, per env and
launcher: the wall time of the whole sweep, the env steps per second summed over the members (all their env steps
over that wall time), how many seeds reached the env's threshold in a periodic evaluation (solved) and with their
final policy, the mean final return; then the population/joblib wall-time ratio. The figures also go to
``results.json`` in ``--out``, from which the table is printed again with ``--table-only``; ``--result PATH``
also writes it as a result file (e.g. results/performance/population.json; schema in benchmarks/result_files.py)
for the docs' Populations page.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import result_files

LAUNCHERS = ("joblib", "population")
DEFAULT_OVERRIDES = ["eval.episodes=10", "device=cpu", "device.threads=1"]


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["cartpole", "lunarlander"], help="env presets (conf/env)")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per sweep (default 8)")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="total_steps of every run (default: the tuned settings': CartPole 50k, LunarLander 300k)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="processes at once for both launchers (default: the launchers' own, cores // threads)",
    )
    parser.add_argument(
        "--members",
        type=int,
        default=None,
        help="hydra.launcher.members of the population sweep (default: seeds spread over the "
        "processes, ceil(seeds / jobs), so both launchers use every core)",
    )
    parser.add_argument("--out", default=None, help="where the sweeps and results.json go")
    parser.add_argument("--table-only", action="store_true", help="print the table of --out/results.json and stop")
    parser.add_argument("--result", default=None, help="also write the table as a result file (JSON) here")
    parser.add_argument(
        "--note", action="append", default=[], help="a sentence the result file keeps (repeatable), e.g. the load"
    )
    args, overrides = parser.parse_known_args(argv)
    unknown = [item for item in overrides if item.startswith("--") or "=" not in item]
    if unknown:
        parser.error(f"not an option nor an rlrun override (key=value): {' '.join(unknown)}")
    if args.seeds < 2:
        parser.error(f"--seeds={args.seeds}: a population needs at least 2")
    if args.table_only and args.out is None:
        parser.error("--table-only reads --out/results.json: pass --out")
    return args, overrides


def rlrun() -> str:
    """The console script beside this interpreter (the venv's), as a user types it."""
    return str(Path(sys.executable).parent / "rlrun")


def run_sweep(env: str, launcher: str, sweep_dir: Path, args: argparse.Namespace, overrides: list[str]) -> dict:
    command = [
        rlrun(),
        "-m",
        f"seed=range({args.seeds})",
        f"env={env}",
        "agent=dqn",
        *DEFAULT_OVERRIDES,
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    if args.steps is not None:
        command.append(f"total_steps={args.steps}")
    if args.jobs is not None:
        command.append(f"hydra.launcher.n_jobs={args.jobs}")
    if launcher == "population":
        jobs = args.jobs or max(1, len(os.sched_getaffinity(0)))  # the launchers' default with device.threads=1
        command.append(f"hydra.launcher.members={args.members or math.ceil(args.seeds / jobs)}")
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if finished.returncode != 0:
        print(finished.stdout[-3000:], finished.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"the {launcher} sweep of {env} failed (exit status {finished.returncode})")
    runs = [json.loads(path.read_text()) for path in sorted(sweep_dir.glob("*/results.json"))]
    threshold = next((run["solved_at_return"] for run in runs if run.get("solved_at_return") is not None), None)
    finals = [run["final_eval_return"] for run in runs]
    return {
        "env": env,
        "launcher": launcher,
        "command": " ".join(command),
        "runs": len(runs),
        "wall_seconds": wall,
        "env_steps": sum(run["steps"] for run in runs),
        "threshold": threshold,
        "solved": sum(run.get("solved_at_step") is not None for run in runs),
        "final_solved": sum(threshold is not None and final >= threshold for final in finals),
        "final_mean": statistics.fmean(finals) if finals else float("nan"),
    }


COLUMNS = [
    "env",
    "launcher",
    "seeds",
    "wall s",
    "env steps/s (sum over seeds)",
    "solved",
    "final >= threshold",
    "mean final",
    "wall vs joblib",
]


def rows(results: list[dict]) -> list[list[str]]:
    """One row per sweep, with its wall time against the joblib sweep of the same env."""
    joblib_wall = {row["env"]: row["wall_seconds"] for row in results if row["launcher"] == "joblib"}
    table_rows = []
    for row in results:
        ratio = row["wall_seconds"] / joblib_wall[row["env"]] if row["env"] in joblib_wall else float("nan")
        table_rows.append(
            [
                row["env"],
                row["launcher"],
                str(row["runs"]),
                f"{row['wall_seconds']:.1f}",
                f"{row['env_steps'] / row['wall_seconds']:,.0f}",
                f"{row['solved']}/{row['runs']}",
                f"{row['final_solved']}/{row['runs']}",
                f"{row['final_mean']:.1f}",
                f"{ratio:.2f}x",
            ]
        )
    return table_rows


def table(results: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    return "\n".join(lines)


def write_result(path: Path, results: list[dict], args: argparse.Namespace) -> None:
    steps = f"{args.steps:,} env steps per run" if args.steps else "the tuned budgets (CartPole 50k, LunarLander 300k)"
    result_files.write(
        path,
        {
            "schema": result_files.SCHEMAS["performance"],
            "benchmark": "population",
            **result_files.provenance_fields(f"python benchmarks/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:])),
            "tables": [
                {
                    "title": f"A seed sweep of DQN, joblib launcher then population launcher, {steps}",
                    "columns": COLUMNS,
                    "rows": rows(results),
                }
            ],
            "notes": list(args.note),
            "sweeps": results,
        },
    )


def main(argv: list[str]) -> None:
    args, overrides = parse_args(argv)
    out = Path(args.out or Path("outputs") / "benchmarks" / "population" / time.strftime("%Y-%m-%d_%H-%M-%S"))
    if args.table_only:
        print(table(json.loads((out / "results.json").read_text())["sweeps"]))
        return
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for env in args.envs:
        for launcher in LAUNCHERS:  # back to back, on the same cores
            results.append(run_sweep(env, launcher, out / env / launcher, args, overrides))
            (out / "results.json").write_text(
                json.dumps({"argv": argv, "cores": os.cpu_count(), "sweeps": results}, indent=2)
            )
    print()
    print(table(results))
    print(f"\n(results: {out / 'results.json'})")
    if args.result:
        write_result(Path(args.result), results, args)


if __name__ == "__main__":
    main(sys.argv[1:])
