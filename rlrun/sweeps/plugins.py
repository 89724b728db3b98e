"""Hydra plugin setup for sweeps: rlrun's launcher defaults, its sweepers, and its resolvers.

``joblib``, ``submitit_local`` and ``submitit_slurm`` are re-registered in Hydra's ConfigStore under their own
names with rlrun's defaults, built from the plugins' typed schemas (so a misspelt launcher key still fails at
composition). This is done in Python, not with YAML files in conf/hydra/launcher/: a YAML file named like a
ConfigStore entry is merged with it by Hydra's deprecated "automatic schema matching" (a warning on every run),
and Hydra's plugin scan re-executes the plugins' config modules, which would undo an earlier re-registration.

rlrun's sweepers (hydra_plugins/rlrun_basic_sweeper/, registered as ``basic``, Hydra's default, and
hydra_plugins/rlrun_optuna_sweeper/; both name job folders by what varies, rlrun/sweeps/layout.py) and its joblib,
population and submitit launchers (hydra_plugins/rlrun_joblib_launcher/, rlrun_population_launcher/ and
rlrun_submitit_launcher/: a job killed from outside does not end the sweep) are registered explicitly as well:
Hydra's scan lists ``hydra_plugins`` with pkgutil, which cannot see into the import hook of an editable install
(pip install -e). Those classes sit in the layer above this
one (they call into rlrun.sweeps), so the composition root, rlrun.cli.register_hydra_setup, imports them and hands
them in.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.plugin import Plugin
from omegaconf import OmegaConf

JOB_FOLDER_MAX_CHARS = 120  # well under the 255-byte file name limit; the job number keeps names unique
SUBMITIT_LAUNCHERS = "hydra_plugins.rlrun_submitit_launcher.launchers"  # see rlrun/sweeps/submitit_jobs.py
JOBLIB_LAUNCHER = "hydra_plugins.rlrun_joblib_launcher.launcher.RlrunJoblibLauncher"  # see rlrun/sweeps/joblib_jobs.py
# see rlrun/sweeps/population_jobs.py
POPULATION_LAUNCHER = "hydra_plugins.rlrun_population_launcher.launcher.RlrunPopulationLauncher"


@dataclass
class PopulationLauncherConf:
    """``hydra.launcher.*`` of hydra/launcher=population (docs/population.md): typed, so a misspelt key fails."""

    _target_: str = POPULATION_LAUNCHER
    # processes (populations or ordinary jobs) at once; the joblib launcher's default: cores // device.threads
    n_jobs: int = "${rlrun.parallel_jobs:${device.threads}}"  # type: ignore[assignment]
    members: Optional[int] = None  # most jobs trained together in one process; null: all seeds of a config
    timeout: Optional[float] = None  # seconds a process may run before it gets SIGTERM (it saves last.pt)


def usable_cores() -> int:
    """Cores this process may run on (a container or a SLURM allocation can grant fewer than the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parallel_jobs(threads_per_job: int) -> int:
    """How many jobs fit at once so that jobs x torch threads <= cores (oversubscription slows updates 15-100x)."""
    return max(1, usable_cores() // max(1, int(threads_per_job)))


def job_folder(job_number: int, override_dirname: str) -> str:
    """``3_agent=dqn,seed=1``: the job number, then its overrides, so TensorBoard's run names say what ran.

    rlrun's sweepers leave the overrides every job shares out of ``override_dirname`` (rlrun/sweeps/layout.py).

    Long names keep whole ``key=value`` items up to JOB_FOLDER_MAX_CHARS and end in ``,...``.
    """
    name = str(job_number)
    items = re.sub(r"[/\\\s]", "_", override_dirname).split(",") if override_dirname else []
    for index, item in enumerate(items):  # path separators and blanks (replaced above) would nest or split it
        candidate = f"{name}{'_' if index == 0 else ','}{item}"
        if len(candidate) > JOB_FOLDER_MAX_CHARS:
            return f"{name},..." if index else f"{name}_{item[: JOB_FOLDER_MAX_CHARS - len(name) - 4]}..."
        name = candidate
    return name


def slurm_job_name(sweep_dir: str) -> str:
    """``rlrun_2026-11-21_10-00-00``: the app and the sweep (its folder), so squeue tells sweeps apart.

    Hydra's default would be the task function's module, ``cli``, for every sweep.
    """
    return "_".join(["rlrun", *Path(str(sweep_dir)).parts[-2:]]).replace(" ", "_")


def register_sweep_plugins(plugin_classes: Iterable[type[Plugin]]) -> None:
    """Register rlrun's sweepers and launchers, ``plugin_classes``, then the launcher defaults and resolvers.

    Idempotent. Call it after Hydra's plugin scan (``Plugins.instance()``): the scan re-executes the plugin modules
    it finds, which would re-store the plugins' own defaults over rlrun's and leave classes imported before it stale.
    """
    plugins = Plugins.instance()
    for plugin in plugin_classes:
        plugins.register(plugin)
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeperConf
    from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
    from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

    threads = "${device.threads}"
    local_settings: dict[str, Any] = dict(cpus_per_task=threads, tasks_per_node=1, timeout_min=60)
    slurm_settings: dict[str, Any] = dict(
        cpus_per_task=threads,
        tasks_per_node=1,
        nodes=1,
        mem_gb=4,
        timeout_min=120,
        array_parallelism=64,
        name="${rlrun.slurm_job_name:${hydra.sweep.dir}}",
        # SIGTERM, which rlrun answers by saving last.pt (every member's, in a population), instead of submitit's
        # USR2, whose handler raises inside training (no checkpoint) or requeues the job to start over from step 0
        additional_parameters={"signal": "TERM@${hydra.launcher.signal_delay_s}"},
    )

    @dataclass
    class LocalPopulationConf(LocalQueueConf):
        members: Optional[int] = None  # most jobs trained together in one submitit job; null: all seeds of a config

    @dataclass
    class SlurmPopulationConf(SlurmQueueConf):
        members: Optional[int] = None  # most jobs trained together in one SLURM job; null: all seeds of a config

    launchers = {
        # as many jobs as fit with jobs x device.threads <= usable cores, each in a process of its own
        "joblib": JobLibLauncherConf(_target_=JOBLIB_LAUNCHER, n_jobs="${rlrun.parallel_jobs:${device.threads}}"),
        # the jobs that differ only in seed trained together, n_jobs processes at once (rlrun/sweeps/population_jobs.py)
        "population": PopulationLauncherConf(),
        "submitit_local": LocalQueueConf(_target_=f"{SUBMITIT_LAUNCHERS}.RlrunLocalLauncher", **local_settings),
        # one training run per SLURM job, with as many CPUs as it has torch threads; partition etc. per cluster
        "submitit_slurm": SlurmQueueConf(_target_=f"{SUBMITIT_LAUNCHERS}.RlrunSlurmLauncher", **slurm_settings),
        # the same, with one population (the jobs that differ only in seed) per submitit job
        "population_local": LocalPopulationConf(
            _target_=f"{SUBMITIT_LAUNCHERS}.RlrunLocalPopulationLauncher", **local_settings
        ),
        "population_slurm": SlurmPopulationConf(
            _target_=f"{SUBMITIT_LAUNCHERS}.RlrunSlurmPopulationLauncher", **slurm_settings
        ),
    }
    store = ConfigStore.instance()
    for name, node in launchers.items():
        store.store(group="hydra/launcher", name=name, node=node, provider="rlrun")
    store.store(
        group="hydra/sweeper",
        name="basic",
        provider="rlrun",
        node=BasicSweeperConf(_target_="hydra_plugins.rlrun_basic_sweeper.basic_sweeper.RlrunBasicSweeper"),
    )
    OmegaConf.register_new_resolver("rlrun.parallel_jobs", parallel_jobs, replace=True)
    OmegaConf.register_new_resolver("rlrun.job_folder", job_folder, replace=True)
    OmegaConf.register_new_resolver("rlrun.slurm_job_name", slurm_job_name, replace=True)
