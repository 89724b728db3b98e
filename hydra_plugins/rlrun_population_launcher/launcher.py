"""rlrun's joblib launcher with the jobs that differ only in seed grouped into populations, one process each.

Its config (``hydra.launcher.members`` etc.) is rlrun.sweeps.plugins.PopulationLauncherConf.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn

from hydra_plugins.rlrun_joblib_launcher.launcher import RlrunJoblibLauncher


class RlrunPopulationLauncher(RlrunJoblibLauncher):
    def __init__(self, members: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.members = members

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from rlrun.sweeps.joblib_jobs import launch_jobs
        from rlrun.sweeps.population_jobs import plan_populations

        return launch_jobs(self, job_overrides, initial_job_idx, plan=plan_populations)
