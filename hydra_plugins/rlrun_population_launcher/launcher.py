"""rlrun's joblib launcher with the jobs that differ only in seed grouped into populations, one process each."""

# no `from __future__ import annotations`: Hydra's plugin scan loads this module outside sys.modules, where a dataclass
# with string annotations cannot resolve them

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn

from hydra_plugins.rlrun_joblib_launcher.launcher import RlrunJoblibLauncher


@dataclass
class PopulationLauncherConf:
    """``hydra.launcher.*`` of hydra/launcher=population (docs/population.md)."""

    _target_: str = "hydra_plugins.rlrun_population_launcher.launcher.RlrunPopulationLauncher"
    # processes (populations or ordinary jobs) at once; the joblib launcher's default: cores // device.threads
    n_jobs: int = "${rlrun.parallel_jobs:${device.threads}}"  # type: ignore[assignment]
    members: Optional[int] = None  # most jobs trained together in one process; null: all seeds of a config
    timeout: Optional[float] = None  # seconds a process may run before it gets SIGTERM (it saves last.pt)


class RlrunPopulationLauncher(RlrunJoblibLauncher):
    def __init__(self, members: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.members = members

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from rlrun.sweeps.joblib_jobs import launch_jobs
        from rlrun.sweeps.population_jobs import plan_populations

        return launch_jobs(self, job_overrides, initial_job_idx, plan=plan_populations)
