"""hydra-submitit-launcher's launchers, collecting each job on its own so one killed job cannot end the sweep.

Hydra imports plugin modules on every run, so submitit itself is imported only when a sweep launches.
"""

from __future__ import annotations

from typing import Sequence

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
