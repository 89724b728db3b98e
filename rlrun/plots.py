"""Pictures of what runs did: learning curves (``mode=plot``) and histograms of evaluation returns.

Curves are read back from the TensorBoard event files with TensorBoard's own reader, so a plot shows
exactly what TensorBoard shows. Building the plotted series is kept apart from drawing them: tests check
the series against the event files, not pixels. Figures are drawn on matplotlib ``Figure`` objects with
the Agg canvas (no pyplot, no display), so plotting works headless and changes no global backend.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from rlrun import stats
from rlrun.errors import ConfigError

log = logging.getLogger(__name__)

TRAIN_RETURN = "charts/episodic_return"
EVAL_RETURN = "eval/mean_return"
EVAL_STD = "eval/std_return"
EPSILON = "train/epsilon"

PANEL_INCHES = (6.0, 4.0)  # one panel of curves.png; at DPI below: 600 x 400 pixels per panel
HISTOGRAM_INCHES = (8.0, 4.5)  # returns.png: 800 x 450 pixels
DPI = 100
MAX_HISTOGRAM_BINS = 40
GRID_POINTS = 200  # env-step grid on which a sweep's seeds are averaged
PROFILE_POINTS = 100  # thresholds tau at which the performance profile is evaluated


# ----------------------------------------------------------------------------- series of one run
@dataclass
class Series:
    steps: np.ndarray  # env steps (x)
    values: np.ndarray


def empty_series() -> Series:
    return Series(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


def read_scalars(run_dir: Path) -> dict[str, Series]:
    """Every scalar tag of a run, in logging order, as TensorBoard's ``EventAccumulator`` reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # it logs every event file it opens at INFO
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0: keep every point
    events.Reload()
    series = {}
    for tag in events.Tags()["scalars"]:
        points = events.Scalars(tag)
        series[tag] = Series(
            np.array([p.step for p in points], dtype=np.int64), np.array([p.value for p in points], dtype=np.float64)
        )
    return series


def moving_average(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing mean and std over the last ``window`` values (fewer at the start), one pair per value."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return values.copy(), values.copy()
    padded = np.concatenate([np.full(window - 1, np.nan), values])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    return np.nanmean(windows, axis=1), np.nanstd(windows, axis=1)


@dataclass
class RunCurves:
    """What ``curves.png`` draws for one run."""

    name: str
    train: Series  # episodic returns as logged, x = env step at the episode's end
    train_mean: np.ndarray  # moving average of train.values
    train_std: np.ndarray  # moving std of train.values (the band is mean ± std)
    window: int
    eval: Series  # greedy evaluation mean return
    eval_std: Series  # its std over the evaluation episodes
    epsilon: Series | None  # None when the run logged no epsilon (e.g. agent=random)


def run_curves(run_dir: Path, window: int) -> RunCurves:
    scalars = read_scalars(run_dir)
    train = scalars.get(TRAIN_RETURN, empty_series())
    mean, std = moving_average(train.values, window)
    return RunCurves(
        name=str(run_dir),
        train=train,
        train_mean=mean,
        train_std=std,
        window=window,
        eval=scalars.get(EVAL_RETURN, empty_series()),
        eval_std=scalars.get(EVAL_STD, empty_series()),
        epsilon=scalars.get(EPSILON),
    )


# ----------------------------------------------------------------------------- statistics across seeds
@dataclass
class AggregateCurve:
    steps: np.ndarray
    center: np.ndarray  # mean or IQM over runs at each step
    low: np.ndarray  # 95% stratified bootstrap confidence band (rlrun.stats)
    high: np.ndarray
    runs: int


def aggregate(steps: np.ndarray, samples: np.ndarray, how: str) -> AggregateCurve:
    band = stats.curve_band(samples, how)
    return AggregateCurve(steps, band.center, band.low, band.high, samples.shape[0])


def train_samples_on_grid(runs: list[RunCurves]) -> tuple[np.ndarray, np.ndarray] | None:
    """Each run's moving-average training return, interpolated onto env steps every run reached.

    Episodes end at different steps in different seeds, so curves are compared on a common grid. The grid
    stops where the shortest run stops: every point averages the same runs.
    """
    if any(len(run.train.steps) == 0 for run in runs):
        return None
    start = max(run.train.steps[0] for run in runs)
    end = min(run.train.steps[-1] for run in runs)
    grid = np.linspace(start, end, GRID_POINTS) if end > start else np.array([float(end)])
    samples = np.stack([np.interp(grid, run.train.steps, run.train_mean) for run in runs])
    return grid, samples


def eval_samples_at_shared_steps(runs: list[RunCurves]) -> tuple[np.ndarray, np.ndarray] | None:
    """Greedy eval returns at the evaluation steps all runs share (runs that stopped early end the curve)."""
    if any(len(run.eval.steps) == 0 for run in runs):
        return None
    shared = runs[0].eval.steps
    for run in runs[1:]:
        shared = np.intersect1d(shared, run.eval.steps)
    if len(shared) == 0:
        return None
    samples = np.stack([run.eval.values[np.searchsorted(run.eval.steps, shared)] for run in runs])
    return shared, samples


# ----------------------------------------------------------------------------- sweeps
@dataclass
class SweepConfigCurves:
    """One configuration of a sweep: its runs (seeds) and their aggregated curves."""

    label: str  # the overrides that differ from the other configurations
    overrides: list[str]
    run_dirs: list[Path] = field(default_factory=list)
    train: AggregateCurve | None = None
    eval: AggregateCurve | None = None
    final_returns: list[float] = field(default_factory=list)  # each run's last greedy eval return


def is_run_dir(path: Path) -> bool:
    return any(Path(path).glob("events.out.tfevents.*"))


def sweep_job_dirs(path: Path) -> list[Path]:
    """Hydra multirun jobs: subfolders named by job number (``3`` or ``3_agent=dqn,seed=1``) with
    ``.hydra/overrides.yaml``, in job order."""
    jobs = [
        child
        for child in Path(path).iterdir()
        if child.is_dir() and child.name.split("_", 1)[0].isdigit() and (child / ".hydra" / "overrides.yaml").is_file()
    ]
    return sorted(jobs, key=lambda child: int(child.name.split("_", 1)[0]))


def read_overrides(job_dir: Path) -> list[str]:
    return [str(item) for item in OmegaConf.load(job_dir / ".hydra" / "overrides.yaml")]


def override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def group_by_config(jobs: dict[Path, list[str]], seed_keys: tuple[str, ...] = ("seed",)) -> list[SweepConfigCurves]:
    """Jobs whose overrides differ only in the seed are one configuration; labels keep what differs."""
    groups: dict[tuple[str, ...], SweepConfigCurves] = {}
    for job_dir, overrides in jobs.items():
        config = tuple(o for o in overrides if override_key(o) not in seed_keys)
        groups.setdefault(config, SweepConfigCurves(label="", overrides=list(config))).run_dirs.append(job_dir)
    common = set.intersection(*(set(config) for config in groups)) if groups else set()
    for config, group in groups.items():
        group.label = ", ".join(o for o in config if o not in common) or "all runs"
    return list(groups.values())


def sweep_curves(sweep_dir: Path, window: int, how: str) -> list[SweepConfigCurves]:
    jobs = {job: read_overrides(job) for job in sweep_job_dirs(sweep_dir)}
    trained = {job: overrides for job, overrides in jobs.items() if is_run_dir(job)}
    for job in jobs.keys() - trained.keys():
        log.warning("%s has no TensorBoard events (failed, or not a training job): left out", job)
    groups = group_by_config(trained)
    for group in groups:
        runs = [run_curves(run_dir, window) for run_dir in group.run_dirs]
        train = train_samples_on_grid(runs)
        evals = eval_samples_at_shared_steps(runs)
        group.train = aggregate(*train, how) if train else None
        group.eval = aggregate(*evals, how) if evals else None
        group.final_returns = [float(run.eval.values[-1]) for run in runs if len(run.eval.values)]
    return groups


# ----------------------------------------------------------------------------- figures
def save_figure(figure: Figure, path_without_suffix: Path) -> list[Path]:
    paths = [path_without_suffix.with_suffix(".png"), path_without_suffix.with_suffix(".svg")]
    for path in paths:
        figure.savefig(path, dpi=DPI)
    return paths


def panels(count: int) -> tuple[Figure, list]:
    figure = Figure(figsize=(PANEL_INCHES[0] * count, PANEL_INCHES[1]), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, count, squeeze=False)[0]
    for ax in axes:
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    return figure, list(axes)


def draw_run(curves: RunCurves, out_dir: Path) -> list[Path]:
    """``curves.png``/``.svg``: returns (raw, moving average ± std, greedy eval) and, if logged, epsilon."""
    figure, axes = panels(2 if curves.epsilon is not None else 1)
    returns_ax = axes[0]
    if len(curves.train.steps):
        returns_ax.plot(
            curves.train.steps, curves.train.values, color="tab:blue", alpha=0.25, lw=0.8, label="episode return"
        )
        returns_ax.plot(
            curves.train.steps, curves.train_mean, color="tab:blue", label=f"moving average ({curves.window} episodes)"
        )
        returns_ax.fill_between(
            curves.train.steps,
            curves.train_mean - curves.train_std,
            curves.train_mean + curves.train_std,
            color="tab:blue",
            alpha=0.2,
            label="± std",
        )
    if len(curves.eval.steps):
        std = curves.eval_std.values if len(curves.eval_std.values) == len(curves.eval.values) else None
        returns_ax.errorbar(
            curves.eval.steps,
            curves.eval.values,
            yerr=std,
            color="tab:orange",
            marker="o",
            ms=4,
            capsize=3,
            label="greedy eval (mean ± std)",
        )
    returns_ax.set_ylabel("return")
    returns_ax.set_title("episodic return")
    returns_ax.legend(loc="best", fontsize="small")
    if curves.epsilon is not None:
        axes[1].plot(curves.epsilon.steps, curves.epsilon.values, color="tab:green")
        axes[1].set_ylabel("epsilon")
        axes[1].set_ylim(0, 1.05)  # the whole range, so a slow decay looks slow
        axes[1].set_title("exploration (epsilon)")
    figure.suptitle(curves.name, fontsize="small")
    return save_figure(figure, Path(out_dir) / "curves")


def draw_sweep(groups: list[SweepConfigCurves], how: str, window: int, title: str, out_dir: Path) -> list[Path]:
    """One curve per configuration (aggregated over seeds, with a 95% bootstrap band), train and eval panels."""
    figure, (train_ax, eval_ax) = panels(2)
    center = "mean" if how == "mean" else "interquartile mean"
    for index, group in enumerate(groups):
        color = f"C{index % 10}"
        label = f"{group.label} ({len(group.run_dirs)} runs)"
        for ax, curve in ((train_ax, group.train), (eval_ax, group.eval)):
            if curve is None:
                continue
            ax.plot(curve.steps, curve.center, color=color, label=label, marker="o" if ax is eval_ax else None, ms=3)
            ax.fill_between(curve.steps, curve.low, curve.high, color=color, alpha=0.2)
    train_ax.set_title(f"training return (moving average of {window} episodes)", fontsize="medium")
    eval_ax.set_title("greedy eval return", fontsize="medium")
    train_ax.set_ylabel(f"return: {center} over seeds, {stats.CONFIDENCE:.0%} bootstrap CI")
    eval_ax.legend(loc="best", fontsize="small")
    figure.suptitle(title, fontsize="small")
    return save_figure(figure, Path(out_dir) / "curves")


def draw_profile(groups: list[SweepConfigCurves], title: str, out_dir: Path) -> list[Path]:
    """``profile.png``/``.svg``: the performance profile of final eval returns, one curve per configuration.

    At each return tau, the fraction of a config's runs whose final greedy eval return exceeds tau, with its 95%
    bootstrap band (Agarwal et al. 2021): a curve above another everywhere is better for every threshold a user
    might pick, and the curves show how much the seeds of a config spread.
    """
    scored = {group.label: group.final_returns for group in groups if group.final_returns}
    if not scored:
        return []
    every = np.concatenate([np.asarray(values) for values in scored.values()])
    span = max(float(every.max() - every.min()), 1.0)
    taus = np.linspace(every.min() - 0.05 * span, every.max() + 0.05 * span, PROFILE_POINTS)
    profiles = stats.performance_profile(scored, taus)
    figure, (ax,) = panels(1)
    for index, group in enumerate(groups):
        if group.label not in profiles:
            continue
        band, color = profiles[group.label], f"C{index % 10}"
        ax.plot(taus, band.center, color=color, label=f"{group.label} ({len(scored[group.label])} runs)")
        ax.fill_between(taus, band.low, band.high, color=color, alpha=0.2)
    ax.set_xlabel("final greedy eval return (tau)")
    ax.set_ylabel(f"fraction of runs > tau ({stats.CONFIDENCE:.0%} bootstrap CI)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("performance profile of final returns", fontsize="medium")
    ax.legend(loc="best", fontsize="small")
    figure.suptitle(title, fontsize="small")
    return save_figure(figure, Path(out_dir) / "profile")


def plot_return_histograms(
    returns_by_policy: dict[str, list[float]], threshold: float | None, title: str, path: Path
) -> Path:
    """Overlaid histograms on shared bins (one per policy), with the env's solved threshold if it has one."""
    everything = np.concatenate([np.asarray(r, dtype=np.float64) for r in returns_by_policy.values()])
    edges = np.histogram_bin_edges(everything, bins="auto")
    if len(edges) - 1 > MAX_HISTOGRAM_BINS:
        edges = np.histogram_bin_edges(everything, bins=MAX_HISTOGRAM_BINS)
    figure = Figure(figsize=HISTOGRAM_INCHES, dpi=DPI, layout="constrained")
    ax = figure.subplots()
    for index, (policy, returns) in enumerate(returns_by_policy.items()):
        ax.hist(
            returns,
            bins=list(edges),
            alpha=0.5 if len(returns_by_policy) > 1 else 0.8,
            color=f"C{index % 10}",
            label=f"{policy}: {np.mean(returns):.1f} ± {np.std(returns):.1f}",
        )
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1, label=f"solved threshold {threshold:g}")
    ax.set_xlabel("episode return")
    ax.set_ylabel("episodes")
    ax.set_title(title, fontsize="medium")
    ax.legend(loc="best", fontsize="small")
    path = Path(path)
    figure.savefig(path, dpi=DPI)
    return path


# ----------------------------------------------------------------------------- mode=plot
def plot(cfg: DictConfig) -> dict:
    """``mode=plot``: learning curves of a run or a sweep, written next to its data (``PATH/curves.png``, ``.svg``)."""
    path = Path(cfg.path)
    if not path.is_dir():
        raise ConfigError(
            f"path={cfg.path!r} is not a directory. mode=plot needs a training run directory (with "
            f"events.out.tfevents.* files) or a sweep directory (subfolders 0/, 1/, ...), e.g. "
            f"path=outputs/2026-11-21/10-00-00."
        )
    if is_run_dir(path):
        figures = draw_run(run_curves(path, cfg.plot.window), path)
        kind = "run"
    elif sweep_job_dirs(path):
        groups = sweep_curves(path, cfg.plot.window, cfg.plot.aggregate)
        if not groups:
            raise ConfigError(
                f"path={cfg.path!r} is a sweep directory but none of its jobs has TensorBoard events (mode=plot "
                f"draws training runs; did the jobs fail, or were they evaluations?)."
            )
        runs_per_config = sorted({len(group.run_dirs) for group in groups})
        title = f"{path}: {len(groups)} configurations, {'/'.join(map(str, runs_per_config))} runs each"
        figures = draw_sweep(groups, cfg.plot.aggregate, cfg.plot.window, title, path)
        figures += draw_profile(groups, title, path)
        kind = "sweep"
    else:
        raise ConfigError(
            f"path={cfg.path!r} is neither a training run (no events.out.tfevents.* files in it) nor a sweep "
            f"(no numbered subfolders with .hydra/overrides.yaml). Point it at one run directory, e.g. "
            f"path=outputs/2026-11-21/10-00-00, or at one sweep, e.g. path=outputs/multirun/2026-11-21/10-00-00."
        )
    for figure_path in figures:
        print(f"wrote {figure_path}")
    return {"kind": kind, "figures": [str(p) for p in figures]}
