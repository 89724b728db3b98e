"""The sweep in TensorBoard: a ``summary`` run in the sweep folder that shows configs, not seeds.

A 3-config x 5-seed sweep is 15 tangled curves in TensorBoard's Scalars tab. ``SWEEP/summary`` holds the layout of
the Custom Scalars tab, margin charts (one chart per metric), and one run per config (``summary/agent=dqn``) with
the interquartile mean over its seeds of the greedy eval return and of the training return (moving average) and the
95% stratified bootstrap interval (rlrun.stats): one line with a band per config, in that run's colour. Each config
run is also a session of the HParams tab, with its hparams and, as its metrics, the IQM of its runs' best and final
eval returns. (A margin chart colours lines by run: series of one run would all share one colour.)

Everything here is derived from the job folders, so it is rewritten whole each time: nothing of a user's is lost.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from rlrun import plots
from rlrun.hparams import SweepLayout
from rlrun.sweeps.report import ConfigRow

log = logging.getLogger(__name__)

SUMMARY_RUN = "summary"
CATEGORY = "sweep: IQM over seeds, 95% bootstrap CI"
CHARTS = {"eval": ("eval_return", "greedy eval return"), "train": ("train_return", "training return (moving average)")}
CURVE_WINDOW = 20  # episodes in the training return's moving average, as mode=plot's default


def curve_tags(metric: str) -> tuple[str, str, str]:
    """The value, lower and upper tags of a config's curve of ``metric``; each config's run holds them."""
    return metric, f"{metric}/low", f"{metric}/high"


def layout_summary(charts_with_curves: list[str]):
    """The Custom Scalars layout: a margin chart per metric. A series names tags, matched in every run: one line
    and band per config run, coloured and named by the run as TensorBoard colours runs.

    Built as the layout proto, summarised as ``torch.utils.tensorboard``'s ``custom_scalars`` does (TensorBoard's
    own ``summary.pb`` needs TensorFlow).
    """
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    charts = []
    for kind in charts_with_curves:
        metric, title = CHARTS[kind]
        value, lower, upper = curve_tags(metric)
        series = layout_pb2.MarginChartContent.Series(value=value, lower=lower, upper=upper)
        charts.append(layout_pb2.Chart(title=title, margin=layout_pb2.MarginChartContent(series=[series])))
    layout = layout_pb2.Layout(category=[layout_pb2.Category(title=CATEGORY, chart=charts)])
    tensor = TensorProto(dtype="DT_STRING", string_val=[layout.SerializeToString()], tensor_shape=TensorShapeProto())
    plugin = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME))
    return Summary(value=[Summary.Value(tag=metadata.CONFIG_SUMMARY_TAG, tensor=tensor, metadata=plugin)])


def session_name(label: str) -> str:
    """A config's run under summary/ (its curves and HParams session): its label, path separators replaced."""
    return re.sub(r"[/\\\s]+", "_", label)[:200] or "config"


def config_hparams(sweep_dir: Path, row: ConfigRow, layout: Optional[SweepLayout]) -> tuple[dict, list[str]]:
    """A config's hparam values (from its first job's config; the seed is NaN: a config is all its seeds) and the
    swept columns, as the sweep's jobs log them, so configs and jobs share one HParams table."""
    from rlrun.hparams import flat_hparams, relevant_hparams

    cfg = OmegaConf.load(Path(sweep_dir) / row.jobs[0] / ".hydra" / "config.yaml")
    assert isinstance(cfg, DictConfig)  # a job's saved config is a mapping
    columns = layout.hparams if layout else relevant_hparams(cfg)
    values = flat_hparams(cfg, columns)
    if "seed" in values:
        values["seed"] = math.nan
    return values, (layout.swept_hparams if layout else [])


def write_summary_run(sweep_dir: Path, rows: list[ConfigRow]) -> Optional[Path]:
    """Write (or rewrite) ``SWEEP/summary``; returns its folder, or None when no job has TensorBoard events."""
    from torch.utils.tensorboard import SummaryWriter

    from rlrun.logger import hparams_summaries

    sweep_dir = Path(sweep_dir)
    groups = plots.sweep_curves(sweep_dir, CURVE_WINDOW, "iqm")
    if not groups:
        return None
    run_dir = sweep_dir / SUMMARY_RUN
    shutil.rmtree(run_dir, ignore_errors=True)
    with SummaryWriter(log_dir=str(run_dir)) as writer:
        writer._get_file_writer().add_summary(
            layout_summary([kind for kind in CHARTS if any(getattr(group, kind) is not None for group in groups)])
        )
    layout = SweepLayout.load(sweep_dir)
    row_of_job = {job: row for row in rows for job in row.jobs}
    for group in groups:
        with SummaryWriter(log_dir=str(run_dir / session_name(group.label))) as config_run:
            for kind, (metric, _) in CHARTS.items():
                curve = getattr(group, kind)
                if curve is not None:
                    write_curve(config_run, metric, curve)
            row = row_of_job.get(group.run_dirs[0].name)
            if row is None or row.best_estimates is None or row.final_estimates is None:
                continue
            values, swept = config_hparams(sweep_dir, row, layout)
            for summary in hparams_summaries(values, swept):
                config_run._get_file_writer().add_summary(summary)
            config_run.add_scalar("hparam/best_eval_return", row.best_estimates["iqm"].value, 0)
            config_run.add_scalar("hparam/final_eval_return", row.final_estimates["iqm"].value, 0)
    return run_dir


def write_curve(writer, metric: str, curve: plots.AggregateCurve) -> None:
    """The curve's center, low and high at each env step (the training grid can be finer than whole steps)."""
    written: set[int] = set()
    for step, center, low, high in zip(curve.steps, curve.center, curve.low, curve.high):
        if int(step) in written:
            continue
        written.add(int(step))
        for tag, value in zip(curve_tags(metric), (center, low, high)):
            writer.add_scalar(tag, float(value), int(step))
