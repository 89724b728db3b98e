"""hydra-submitit-launcher's launchers, collecting each job on its own so one killed job cannot end the sweep, and
their population variants (``hydra/launcher=population_slurm``, ``population_local``): one submitit job per population
of the sweep's jobs that differ only in seed (rlrun/sweeps/population_jobs.py).

Hydra imports plugin modules on every run, so submitit itself is imported only when a sweep launches.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher


class RlrunSlurmLauncher(SlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from rlrun.sweeps.submitit_jobs import launch_and_collect

        return launch_and_collect(self, job_overrides, initial_job_idx)


class RlrunLocalLauncher(LocalLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from rlrun.sweeps.submitit_jobs import launch_and_collect

        return launch_and_collect(self, job_overrides, initial_job_idx)


class PopulationSubmission:
    """What turns a submitit launcher into its population variant: ``members``, and tasks planned as populations."""

    def __init__(self, members: Optional[int] = None, **params: Any) -> None:
        super().__init__(**params)  # the submitit launcher's, next in the MRO
        self.members = members  # not a submitit parameter: plan_populations reads it

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from rlrun.sweeps.population_jobs import plan_populations
        from rlrun.sweeps.submitit_jobs import launch_and_collect

        return launch_and_collect(self, job_overrides, initial_job_idx, plan=plan_populations)


class RlrunSlurmPopulationLauncher(PopulationSubmission, RlrunSlurmLauncher):
    pass


class RlrunLocalPopulationLauncher(PopulationSubmission, RlrunLocalLauncher):
    pass
