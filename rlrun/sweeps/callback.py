"""The Hydra callback that ends every multirun with the sweep report (configured in conf/config.yaml)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rlrun.sweeps.report import SUMMARY_CSV, SUMMARY_MD, read_stop, write_summary

log = logging.getLogger("rlrun")


class SweepReport(Callback):
    """Writes summary.csv and summary.md in the sweep directory and prints the table, then the sweep's
    TensorBoard ``summary`` run (rlrun/sweeps/summary_run.py).

    Exits with status 1 after the report when any job failed, so scripts and CI notice a partly failed sweep, and
    with 128 + the signal (130 for Ctrl-C) when a signal stopped the sweep, as shells expect.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return  # nothing was launched (e.g. the sweep failed to compose)
        rows, table = write_summary(sweep_dir)
        print(f"\nSweep summary ({sweep_dir / SUMMARY_CSV}, {sweep_dir / SUMMARY_MD}):\n\n{table}", flush=True)
        try:
            from rlrun.sweeps.summary_run import write_summary_run  # matplotlib and torch: only at a sweep's end

            summary_run = write_summary_run(sweep_dir, rows)
        except Exception as error:  # noqa: BLE001 - the report is written; a TensorBoard view is not worth a failure
            log.warning("could not write the sweep's TensorBoard summary run: %s", error)
        else:
            if summary_run is not None:
                print(
                    f"TensorBoard: tensorboard --logdir {sweep_dir} (run {summary_run.name!r}: Custom Scalars shows "
                    f"each config's IQM with its band, HParams a row per config)",
                    flush=True,
                )
        stop = read_stop(sweep_dir)
        if stop:
            raise SystemExit(128 + signal.Signals[stop["signal"]])
        failed = sum(row.failed for row in rows)
        if failed:
            jobs = sum(len(row.jobs) for row in rows)
            log.error("%d of %d jobs failed; the others finished and are in the summary", failed, jobs)
            raise SystemExit(1)
