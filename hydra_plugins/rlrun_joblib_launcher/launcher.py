"""hydra-joblib-launcher's launcher, with each job in a process of its own so one killed job cannot end the sweep.

Its config (``hydra.launcher.n_jobs`` etc.) is hydra-joblib-launcher's own; rlrun/sweeps/joblib_jobs.py says which
settings apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from omegaconf import DictConfig


class RlrunJoblibLauncher(JoblibLauncher):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stopped_by: Optional[int] = None  # the signal that stopped this sweep: later batches do not start

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from rlrun.sweeps.report import STOPPED_FILE

        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        # a continued sweep: the record of the earlier attempt's stop no longer holds
        (Path(str(config.hydra.sweep.dir)) / STOPPED_FILE).unlink(missing_ok=True)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from rlrun.sweeps.joblib_jobs import launch_jobs

        return launch_jobs(self, job_overrides, initial_job_idx)
