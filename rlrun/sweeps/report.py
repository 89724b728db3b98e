"""The sweep report: which config won, and how sure that is, from each job's own ``results.json``.

One row per distinct config, grouping the jobs whose resolved configs differ only by ``seed``. Each row gives the
interquartile mean and the mean of its runs' best and final greedy eval returns with 95% stratified bootstrap
intervals (rlrun.stats, after rliable), then mean ± std and min / max. Rows are sorted best first (IQM of the best
return); configs whose every run failed come last. A sweep of 2 to 6 configs also gets, for each pair, the
probability that a run of one config ends (final eval return) above a run of the other.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, cast

from omegaconf import OmegaConf

from rlrun.stats import Estimate, interval_estimates, probability_of_improvement
from rlrun.sweeps.job import EVAL_FILE, FAILURE_FILE, RESULTS_FILE
from rlrun.sweeps.resume import GRID_SWEEPERS, sweeper_of

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
IMPROVEMENT_CSV = "improvement.csv"  # the pairwise probabilities of improvement, one line per pair
PAIRWISE_CONFIGS = (2, 6)  # sweeps with this many configs (with finished runs) get the pairwise table
# Written by rlrun's joblib launcher when a signal stopped the sweep: {"signal": "SIGINT", "not_started": [...]}
STOPPED_FILE = "stopped.json"
SEED_KEYS = ("seed", "+seed", "++seed")
UNFINISHED = f"no {RESULTS_FILE} and no {FAILURE_FILE}: the job did not finish (killed, out of memory or timed out)"


@dataclass
class JobOutcome:
    """What one job folder says about its run."""

    folder: str  # e.g. "3_agent=dqn,seed=1"
    overrides: list[str]
    config_key: str  # the resolved config without seed, as canonical JSON: equal keys = same config
    seed: Optional[int]
    results: Optional[dict[str, Any]]  # None when the job failed
    error: Optional[str] = None

    @property
    def failed(self) -> bool:
        return self.results is None


@dataclass
class Spread:
    """Mean, sample std (None for a single run), min and max of one number over a config's runs."""

    mean: float
    std: Optional[float]
    min: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Optional[Spread]:
        if not values:
            return None
        std = statistics.stdev(values) if len(values) > 1 else None
        return cls(statistics.fmean(values), std, min(values), max(values))


@dataclass
class ConfigRow:
    """One line of the report: a config and how its seeds did."""

    config: str  # the overrides that set this config apart from the sweep's other configs
    overrides: list[str] = field(default_factory=list)  # all its overrides but seed
    seeds: list[Optional[int]] = field(default_factory=list)  # of the runs that finished
    jobs: list[str] = field(default_factory=list)  # every job folder, finished or not
    best: Optional[Spread] = None
    final: Optional[Spread] = None
    best_returns: list[float] = field(default_factory=list)  # one per finished run, in job order
    final_returns: list[float] = field(default_factory=list)
    best_estimates: Optional[dict[str, Estimate]] = None  # "iqm" and "mean", with 95% intervals
    final_estimates: Optional[dict[str, Estimate]] = None
    solved_runs: int = 0
    solved_at_return: Optional[float] = None
    solved_at_step: Optional[Spread] = None  # over the runs that reached solved_at_return
    wall_seconds: Optional[Spread] = None
    pruned: int = 0
    errors: list[str] = field(default_factory=list)  # "folder: message", one per failed job

    @property
    def failed(self) -> int:
        return len(self.errors)


# ----------------------------------------------------------------------------- reading job folders
def job_number(folder: Path) -> tuple[int, str]:
    """Sort key: Hydra's job number is the folder name's leading integer."""
    head = folder.name.split("_", 1)[0]
    return (int(head) if head.isdigit() else math.inf, folder.name)  # type: ignore[return-value]


def read_job(job_dir: Path) -> JobOutcome:
    hydra_dir = job_dir / ".hydra"
    overrides = cast(list, OmegaConf.to_container(OmegaConf.load(hydra_dir / "overrides.yaml")) or [])
    config = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.load(hydra_dir / "config.yaml")) or {})
    seed = config.pop("seed", None)
    outcome = JobOutcome(
        job_dir.name, [str(item) for item in overrides], json.dumps(config, sort_keys=True), seed, None
    )
    if (job_dir / RESULTS_FILE).is_file():
        outcome.results = json.loads((job_dir / RESULTS_FILE).read_text())
    elif (job_dir / EVAL_FILE).is_file():
        outcome.results = evaluation_outcome(json.loads((job_dir / EVAL_FILE).read_text()))
    elif (job_dir / FAILURE_FILE).is_file():
        outcome.error = json.loads((job_dir / FAILURE_FILE).read_text())["error"]
    else:
        outcome.error = UNFINISHED
    return outcome


def evaluation_outcome(report: dict[str, Any]) -> dict[str, Any]:
    """A ``mode=evaluate`` job's eval.json in the shape of a training run's results: its one evaluation is both
    the best and the final return, and "solved" means the mean reached the env's threshold."""
    threshold = report.get("reward_threshold")
    return {
        "best_eval_return": report["mean"],
        "final_eval_return": report["mean"],
        "wall_seconds": report.get("wall_seconds", math.nan),
        "solved_at_return": threshold,
        "solved_at_step": 0 if threshold is not None and report["mean"] >= threshold else None,
    }


def collect_jobs(sweep_dir: Path) -> list[JobOutcome]:
    """Every job folder of a sweep (a folder holding ``.hydra/overrides.yaml``), in job order."""
    folders = [path.parent.parent for path in Path(sweep_dir).glob("*/.hydra/overrides.yaml")]
    return [read_job(folder) for folder in sorted(folders, key=job_number)]


# ----------------------------------------------------------------------------- grouping
def common_overrides(jobs: list[JobOutcome]) -> list[str]:
    """Overrides every job of the sweep shares (budgets, device, ...): said once, not in every row."""
    if not jobs:
        return []
    shared = set(jobs[0].overrides).intersection(*(job.overrides for job in jobs[1:]))
    return [item for item in jobs[0].overrides if item in shared and item.split("=", 1)[0] not in SEED_KEYS]


def config_label(overrides: list[str], common: list[str]) -> str:
    """What sets this config apart: its overrides without seed and without those common to the sweep."""
    kept = [item for item in overrides if item.split("=", 1)[0] not in SEED_KEYS and item not in common]
    return " ".join(kept) if kept else "(defaults)" if not common else "(common overrides only)"


def summarize_jobs(jobs: list[JobOutcome]) -> list[ConfigRow]:
    groups: dict[str, list[JobOutcome]] = {}
    for job in jobs:
        groups.setdefault(job.config_key, []).append(job)
    common = common_overrides(jobs)
    rows = [summarize_config(members, common) for members in groups.values()]
    return sorted(
        rows,
        key=lambda row: (
            row.best is None,
            -(row.best_estimates["iqm"].value if row.best_estimates else 0.0),
            row.config,
        ),
    )


def summarize_config(jobs: list[JobOutcome], common: list[str]) -> ConfigRow:
    row = ConfigRow(
        config=config_label(jobs[0].overrides, common),
        jobs=[job.folder for job in jobs],
        overrides=[item for item in jobs[0].overrides if item.split("=", 1)[0] not in SEED_KEYS],
    )
    finished = [job.results for job in jobs if job.results is not None]
    row.errors = [f"{job.folder}: {job.error}" for job in jobs if job.failed]
    row.seeds = [job.seed for job in jobs if not job.failed]
    row.best_returns = [float(r["best_eval_return"]) for r in finished]
    row.final_returns = [float(r["final_eval_return"]) for r in finished]
    row.best, row.best_estimates = Spread.of(row.best_returns), interval_estimates(row.best_returns)
    row.final, row.final_estimates = Spread.of(row.final_returns), interval_estimates(row.final_returns)
    row.wall_seconds = Spread.of([r["wall_seconds"] for r in finished])
    solved = [r["solved_at_step"] for r in finished if r.get("solved_at_step") is not None]
    row.solved_runs = len(solved)
    row.solved_at_step = Spread.of([float(step) for step in solved])
    row.solved_at_return = next(
        (r.get("solved_at_return") for r in finished if r.get("solved_at_return") is not None), None
    )
    row.pruned = sum(1 for r in finished if r.get("pruned_at_step") is not None)
    return row


@dataclass
class Improvement:
    """P(a run of ``better`` ends above a run of ``worse``), on final eval returns."""

    better: str  # the config more likely to end above the other (P >= 0.5)
    worse: str
    probability: Estimate


def pairwise_improvements(rows: list[ConfigRow]) -> list[Improvement]:
    """Every pair of configs with finished runs, in report order, each written the way round where P >= 0.5
    (P(Y > X) is 1 - P(X > Y)); none for a sweep of one config or of more than 6 (15 pairs)."""
    ranked = [row for row in rows if row.final_returns]
    if not PAIRWISE_CONFIGS[0] <= len(ranked) <= PAIRWISE_CONFIGS[1]:
        return []
    improvements = []
    for x, y in itertools.combinations(ranked, 2):
        estimate = probability_of_improvement(x.final_returns, y.final_returns)
        if estimate.value < 0.5:
            x, y = y, x
            estimate = probability_of_improvement(x.final_returns, y.final_returns)
        improvements.append(Improvement(x.config, y.config, estimate))
    return improvements


# ----------------------------------------------------------------------------- writing
CSV_COLUMNS = [
    "config",
    "overrides",
    "runs",
    "seeds",
    "failed",
    "pruned",
    "best_return_iqm",
    "best_return_iqm_low",
    "best_return_iqm_high",
    "best_return_mean_low",
    "best_return_mean_high",
    "best_return_mean",
    "best_return_std",
    "best_return_min",
    "best_return_max",
    "final_return_iqm",
    "final_return_iqm_low",
    "final_return_iqm_high",
    "final_return_mean_low",
    "final_return_mean_high",
    "final_return_mean",
    "final_return_std",
    "final_return_min",
    "final_return_max",
    "solved_at_return",
    "solved_runs",
    "solved_at_step_mean",
    "solved_at_step_min",
    "solved_at_step_max",
    "wall_seconds_mean",
    "jobs",
    "errors",
]


def _number(value: Optional[float]) -> str:
    return "" if value is None else repr(float(value))


def csv_record(row: ConfigRow) -> dict[str, str]:
    record = {
        "config": row.config,
        "overrides": " ".join(row.overrides),
        "runs": str(len(row.seeds)),
        "seeds": " ".join(str(s) for s in row.seeds),
        "failed": str(row.failed),
        "pruned": str(row.pruned),
        "solved_at_return": _number(row.solved_at_return),
        "solved_runs": str(row.solved_runs),
        "jobs": " ".join(row.jobs),
        "errors": " | ".join(row.errors),
        "wall_seconds_mean": _number(row.wall_seconds.mean if row.wall_seconds else None),
    }
    spreads = (("best_return", row.best), ("final_return", row.final), ("solved_at_step", row.solved_at_step))
    for name, spread in spreads:
        for stat in ("mean", "std", "min", "max"):
            column = f"{name}_{stat}"
            if column in CSV_COLUMNS:
                record[column] = _number(getattr(spread, stat) if spread else None)
    for name, estimates in (("best_return", row.best_estimates), ("final_return", row.final_estimates)):
        for statistic in ("iqm", "mean"):
            estimate = estimates[statistic] if estimates else None
            for end, field_name in (("", "value"), ("_low", "low"), ("_high", "high")):
                column = f"{name}_{statistic}{end}"
                if column not in record:  # the mean itself is the Spread's
                    record[column] = _number(getattr(estimate, field_name) if estimate else None)
    return record


def _estimate(estimates: Optional[dict[str, Estimate]], statistic: str) -> str:
    return "-" if estimates is None else str(estimates[statistic])


def _mean_std(spread: Optional[Spread]) -> str:
    if spread is None:
        return "-"
    return f"{spread.mean:.1f}" if spread.std is None else f"{spread.mean:.1f} ± {spread.std:.1f}"


def _min_max(spread: Optional[Spread]) -> str:
    return "-" if spread is None else f"{spread.min:.1f} / {spread.max:.1f}"


def _solved(row: ConfigRow) -> str:
    if row.solved_at_return is None:
        return "-"
    if row.solved_at_step is None:
        return f"0/{len(row.seeds)}"
    return f"{row.solved_runs}/{len(row.seeds)} at {row.solved_at_step.mean:,.0f}"


def markdown_table(rows: list[ConfigRow]) -> str:
    """The report as a Markdown table (readable as plain text too), failures listed under it."""
    threshold = next((row.solved_at_return for row in rows if row.solved_at_return is not None), None)
    solved_header = f"solved ≥ {threshold:g} (runs, mean step)" if threshold is not None else "solved (runs, mean step)"
    lines = [
        f"| config | seeds | best IQM [95% CI] | best mean [95% CI] | best mean ± std | best min / max "
        f"| final IQM [95% CI] | final mean [95% CI] | final mean ± std | final min / max | {solved_header} "
        f"| wall s | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        failed = str(row.failed) + (f" (+{row.pruned} pruned)" if row.pruned else "")
        wall = f"{row.wall_seconds.mean:.1f}" if row.wall_seconds else "-"
        cells = [
            f"{_estimate(estimates, 'iqm')} | {_estimate(estimates, 'mean')} | {_mean_std(spread)} | {_min_max(spread)}"
            for estimates, spread in ((row.best_estimates, row.best), (row.final_estimates, row.final))
        ]
        lines.append(
            f"| {row.config} | {len(row.seeds)} | {cells[0]} | {cells[1]} | {_solved(row)} | {wall} | {failed} |"
        )
    errors = [error for row in rows for error in row.errors]
    if errors:
        lines += ["", f"Failed jobs ({len(errors)}):"] + [f"- {error}" for error in errors]
    return "\n".join(lines) + "\n"


def improvement_table(improvements: list[Improvement]) -> str:
    """The pairwise probabilities of improvement as a Markdown table, with what they mean."""
    lines = [
        "P(X > Y): the probability that a run of X ends with a higher final eval return than a run of Y "
        "(ties count half), with its 95% bootstrap interval. An interval that excludes 0.5 is a difference "
        "these seeds resolve.",
        "",
        "| X | Y | P(X > Y) [95% CI] |",
        "|---|---|---|",
    ]
    lines += [f"| {item.better} | {item.worse} | {item.probability.format(2)} |" for item in improvements]
    return "\n".join(lines) + "\n"


def write_improvements(path: Path, improvements: list[Improvement]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y", "p_x_beats_y", "low", "high"])
        writer.writerows(
            [
                item.better,
                item.worse,
                repr(item.probability.value),
                repr(item.probability.low),
                repr(item.probability.high),
            ]
            for item in improvements
        )


def read_stop(sweep_dir: Path) -> Optional[dict[str, Any]]:
    """How a signal stopped the sweep (its name and the jobs it never started), or None if none did."""
    path = Path(sweep_dir) / STOPPED_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def how_to_continue(sweep_dir: Path, jobs: list[JobOutcome], stop: Optional[dict[str, Any]]) -> str:
    """The lines under the table when some jobs did not finish: why, and the command that goes on."""
    lines = []
    if stop:
        lines.append(f"The sweep was stopped by {stop['signal']}: its running jobs saved checkpoints/last.pt.")
        if stop["not_started"]:
            lines += [f"Not started ({len(stop['not_started'])}):"] + [f"- {job}" for job in stop["not_started"]]
    if (stop or any(job.failed for job in jobs)) and sweeper_of(sweep_dir) in GRID_SWEEPERS:
        from rlrun.loop import resume_command  # torch: imported only when the sweep has jobs to continue

        lines.append(
            f"Continue the sweep (finished jobs are skipped, the others resume from their last.pt or start "
            f"again): {resume_command(sweep_dir)}"
        )
    return "\n".join(lines)


def write_summary(sweep_dir: Path) -> tuple[list[ConfigRow], str]:
    """Write summary.csv and summary.md in the sweep directory; return the rows and the printable report."""
    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
    rows = summarize_jobs(jobs)
    with open(sweep_dir / SUMMARY_CSV, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_record(row) for row in rows)
    common = common_overrides(jobs)
    report = (
        f"{len(jobs)} jobs, {len(rows)} configs. Greedy eval returns over seeds: interquartile mean and mean "
        f"with 95% stratified bootstrap intervals (rliable), mean ± sample std, min / max; sorted by IQM of the "
        f"best return.\n" + (f"Every job: {' '.join(common)}\n" if common else "") + "\n" + markdown_table(rows)
    )
    improvements = pairwise_improvements(rows)
    if improvements:
        write_improvements(sweep_dir / IMPROVEMENT_CSV, improvements)
        report += "\n" + improvement_table(improvements)
    ending = how_to_continue(sweep_dir, jobs, read_stop(sweep_dir))
    if ending:
        report += "\n" + ending + "\n"
    (sweep_dir / SUMMARY_MD).write_text(f"# Sweep {sweep_dir}\n\n{report}")
    return rows, report
