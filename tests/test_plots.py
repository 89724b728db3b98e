"""Learning-curve plots: the plotted series equal the event files, sweeps and their profiles, ``mode=plot``."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from rlrun.cli import run
from rlrun.errors import ConfigError
from rlrun.loop import train
from rlrun.plots import (
    EPSILON,
    EVAL_RETURN,
    TRAIN_RETURN,
    draw_profile,
    draw_run,
    draw_sweep,
    moving_average,
    read_scalars,
    run_curves,
    sweep_curves,
)
from tests.conftest import TINY_RUN, compose_cfg, run_cli


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train(compose_cfg(*TINY_RUN), run_dir)
    return run_dir


def write_run(
    run_dir: Path,
    returns: list[tuple[int, float]],
    evals: list[tuple[int, float]],
    epsilons: list[tuple[int, float]] = (),
) -> Path:
    """A run's event file with chosen scalars, written as the loop writes them (no training needed)."""
    writer = SummaryWriter(log_dir=str(run_dir))
    for tag, points in ((TRAIN_RETURN, returns), (EVAL_RETURN, evals), (EPSILON, epsilons)):
        for step, value in points:
            writer.add_scalar(tag, value, step)
    writer.close()
    return run_dir


def write_sweep(sweep_dir: Path, jobs: list[tuple[list[str], list[tuple[int, float]], list[tuple[int, float]]]]):
    """Hydra multirun layout: 0/, 1/, ... each with .hydra/overrides.yaml and an event file."""
    for number, (overrides, returns, evals) in enumerate(jobs):
        job_dir = sweep_dir / str(number)
        (job_dir / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create(overrides), job_dir / ".hydra" / "overrides.yaml")
        write_run(job_dir, returns, evals)
    return sweep_dir


def png_size(path: Path) -> tuple[int, int]:
    height, width = iio.imread(path).shape[:2]
    return width, height


def brute_force_moving(values, window):
    means = [np.mean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
    stds = [np.std(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
    return np.array(means), np.array(stds)


# ----------------------------------------------------------------------------- one run
def test_run_series_are_the_event_file_data(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained_run), size_guidance={"scalars": 0})
    events.Reload()
    curves = run_curves(trained_run, window=5)
    for series, tag in ((curves.train, TRAIN_RETURN), (curves.eval, EVAL_RETURN), (curves.epsilon, EPSILON)):
        logged = events.Scalars(tag)
        assert len(logged) > 1
        assert series.steps.tolist() == [e.step for e in logged]
        assert series.values.tolist() == [e.value for e in logged]
    assert curves.eval.steps.tolist() == [300, 600]
    mean, std = brute_force_moving(curves.train.values, 5)
    np.testing.assert_allclose(curves.train_mean, mean)
    np.testing.assert_allclose(curves.train_std, std, atol=1e-9)


def test_run_figure_has_a_returns_and_an_epsilon_panel(trained_run, tmp_path):
    png, svg = draw_run(run_curves(trained_run, window=5), tmp_path)
    assert png.name == "curves.png" and svg.name == "curves.svg"
    assert png_size(png) == (1200, 400)
    assert svg.read_text().lstrip().startswith("<?xml")


def test_run_without_epsilon_gets_one_panel(tmp_path):
    write_run(tmp_path, returns=[(10, 9.0), (25, 15.0), (40, 12.0)], evals=[(40, 20.0)])
    curves = run_curves(tmp_path, window=2)
    assert curves.epsilon is None
    png, _ = draw_run(curves, tmp_path)
    assert png_size(png) == (600, 400)


def test_moving_average_matches_a_brute_force_window():
    values = np.random.default_rng(0).normal(size=37) * 50
    for window in (1, 4, 10, 50):
        mean, std = moving_average(values, window)
        expected_mean, expected_std = brute_force_moving(values, window)
        np.testing.assert_allclose(mean, expected_mean)
        np.testing.assert_allclose(std, expected_std, atol=1e-9)
    assert moving_average(np.array([]), 3)[0].size == 0


# ----------------------------------------------------------------------------- sweeps
def two_configs_three_seeds(sweep_dir: Path) -> Path:
    jobs = []
    for agent, offset in (("dqn", 0.0), ("double_dqn", 100.0)):
        for seed in range(3):
            level = offset + 10.0 * seed  # constant training return per run
            returns = [(step, level) for step in range(20, 620, 40)]
            evals = [(300, offset + seed), (600, offset + 2 * seed)]
            jobs.append(([f"agent={agent}", f"seed={seed}", "total_steps=600"], returns, evals))
    return write_sweep(sweep_dir, jobs)


def test_sweep_aggregates_seeds_per_config_with_labels_from_differing_overrides(tmp_path):
    groups = sweep_curves(two_configs_three_seeds(tmp_path), window=3, how="mean")
    assert [group.label for group in groups] == ["agent=dqn", "agent=double_dqn"]  # seed and total_steps left out
    assert [len(group.run_dirs) for group in groups] == [3, 3]
    dqn, double = groups
    assert dqn.eval.steps.tolist() == [300, 600]
    np.testing.assert_allclose(dqn.eval.center, [np.mean([0, 1, 2]), np.mean([0, 2, 4])])
    np.testing.assert_allclose(double.eval.center, [101.0, 102.0])
    np.testing.assert_allclose(dqn.train.center, 10.0)  # mean of 0, 10, 20 at every grid step
    np.testing.assert_allclose(double.train.center, 110.0)
    assert dqn.train.steps[0] == 20 and dqn.train.steps[-1] == 580
    assert np.all(dqn.eval.low <= dqn.eval.center) and np.all(dqn.eval.center <= dqn.eval.high)


def test_sweep_interquartile_mean_option(tmp_path):
    jobs = [
        ([f"seed={seed}"], [(10, float(value))], [(300, float(value))]) for seed, value in enumerate([1, 2, 3, 1000])
    ]
    (group,) = sweep_curves(write_sweep(tmp_path, jobs), window=1, how="iqm")
    assert group.label == "all runs"
    assert group.eval.center.tolist() == [2.5]


def test_a_sweep_s_performance_profile_counts_final_returns_above_each_threshold(tmp_path):
    groups = sweep_curves(two_configs_three_seeds(tmp_path), window=3, how="iqm")
    assert [group.final_returns for group in groups] == [[0.0, 2.0, 4.0], [100.0, 102.0, 104.0]]
    png, svg = draw_profile(groups, "test sweep", tmp_path)
    assert png == tmp_path / "profile.png" and png_size(png) == (600, 400) and svg.is_file()


def test_sweep_figure_size(tmp_path):
    groups = sweep_curves(two_configs_three_seeds(tmp_path), window=3, how="mean")
    png, svg = draw_sweep(groups, "mean", 3, "test sweep", tmp_path)
    assert png_size(png) == (1200, 400) and svg.is_file()


# ----------------------------------------------------------------------------- mode=plot
def test_plot_mode_from_the_command_line_writes_curves_next_to_the_sweep(tmp_path):
    sweep_dir = two_configs_three_seeds(tmp_path / "sweep")
    result = run_cli("mode=plot", f"path={sweep_dir}", "plot.aggregate=iqm", f"hydra.run.dir={tmp_path / 'plot'}")
    assert result.returncode == 0, result.stderr
    assert (sweep_dir / "curves.png").is_file() and (sweep_dir / "curves.svg").is_file()
    assert f"wrote {sweep_dir / 'curves.png'}" in result.stdout
    assert f"wrote {sweep_dir / 'profile.png'}" in result.stdout and (sweep_dir / "profile.svg").is_file()


def test_plot_mode_needs_a_path_but_no_checkpoint_or_training(tmp_path):
    result = run_cli("mode=plot", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "mode=plot needs path=DIR" in result.stderr
    assert not list(tmp_path.glob("events.out.tfevents*")) and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    "make_path,fragment",
    [
        (lambda tmp: tmp / "missing", "is not a directory"),
        (lambda tmp: tmp, "neither a training run"),
    ],
)
def test_plot_mode_rejects_paths_that_hold_no_runs(tmp_path, make_path, fragment):
    path = make_path(tmp_path)
    with pytest.raises(ConfigError, match=fragment):
        run(compose_cfg("mode=plot", f"path={path}"), tmp_path, [])


def test_plot_mode_validates_its_options(tmp_path):
    with pytest.raises(ConfigError, match="plot.aggregate='median'"):
        run(compose_cfg("mode=plot", f"path={tmp_path}", "plot.aggregate=median"), tmp_path, [])
    with pytest.raises(ConfigError, match="plot.window=0"):
        run(compose_cfg("mode=plot", f"path={tmp_path}", "plot.window=0"), tmp_path, [])


def test_read_scalars_keeps_every_point(tmp_path):
    points = [(step, float(step) / 7) for step in range(5000)]  # more than EventAccumulator's default 1000
    write_run(tmp_path, returns=points, evals=[])
    assert len(read_scalars(tmp_path)[TRAIN_RETURN].steps) == 5000
