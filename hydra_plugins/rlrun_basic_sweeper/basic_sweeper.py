"""Hydra's ``BasicSweeper`` with rlrun's sweep layout: every job is known before the first batch is launched."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper


class RlrunBasicSweeper(BasicSweeper):
    def get_job_batch(self) -> Sequence[Sequence[str]]:
        """Before the first batch: settle the layout over all of the sweep's jobs, and name each job's folder."""
        from rlrun.sweeps import layout

        assert self.overrides is not None and self.config is not None and self.hydra_context is not None
        if self.batch_index == 0:
            jobs = [job for batch in self.overrides for job in batch]
            varying = layout.varying_keys(jobs)
            loader, config = self.hydra_context.config_loader, self.config
            layout.plan_sweep(
                Path(config.hydra.sweep.dir),
                varying,
                layout.shared_overrides(jobs, varying),
                layout.configs_to_inspect(jobs),
                lambda job: loader.load_sweep_config(config, job),
            )
            excluded = layout.excluded_keys(config)
            self.overrides = [
                [layout.folder_naming(job, varying, excluded) for job in batch] for batch in self.overrides
            ]
        return super().get_job_batch()
