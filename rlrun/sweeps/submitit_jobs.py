"""Submitting and collecting the jobs of ``hydra/launcher=submitit_slurm`` and ``submitit_local``, sweep-safe.

hydra-submitit-launcher collects results with ``job.results()`` for every job in turn, so one job killed from outside
(out of memory, ``scancel --signal=KILL``, a node failure) raises submitit's UncompletedJobError and ends the whole
sweep before the report. Here (called by rlrun's launchers in hydra_plugins/rlrun_submitit_launcher/) such a job
becomes a failure record, like any other failed job, and the others are still collected.

``hydra/launcher=population_slurm`` and ``population_local`` group the sweep's jobs into populations as
``hydra/launcher=population`` does (rlrun/sweeps/population_jobs.py: the same plan, the same worker function), one
submitit job per population: past one machine, each SLURM job trains a population on its node.

On SLURM, job states are polled with ``sacct`` where the cluster keeps accounting, and with ``squeue`` where it does
not: submitit 1.5.4 always calls ``sacct`` and logs a warning on every poll when accounting is off.
"""

from __future__ import annotations

import getpass
import logging
import subprocess
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union, cast

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf
from submitit.core.utils import UncompletedJobError
from submitit.slurm.slurm import SlurmInfoWatcher

from rlrun.sweeps.job import KILLED_FROM_OUTSIDE, find_job_dir, record_ended_without_result
from rlrun.sweeps.joblib_jobs import Job, Task, one_task_per_job

log = logging.getLogger(__name__)

SLURM_POLL_MAX_DELAY_S = 60  # submitit polls at 0, 2, 4, 8, ... s after submission, then at least this often


def accounting_enabled() -> bool:
    """Whether ``sacct`` answers on this cluster (it fails with "accounting storage is disabled" when it is off)."""
    try:
        probe = subprocess.run(
            ["sacct", "--noheader", "--allocations", "--jobs", "1", "--format", "JobID"],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


class JobStateWatcher(SlurmInfoWatcher):
    """Submitit's SLURM state poller, with squeue instead of sacct on clusters that keep no accounting.

    squeue lists a job until slurmctld forgets it (MinJobAge, 300 s by default, after it ends); a job it no longer
    lists has ended. Whether it left a result is then read from its result file, as submitit always does.
    """

    ENDED = "ENDED"  # the state of a job squeue no longer lists

    def __init__(self, delay_s: int = SLURM_POLL_MAX_DELAY_S) -> None:
        super().__init__(delay_s=delay_s)
        self.use_sacct: Optional[bool] = None  # decided at the first poll

    def _make_command(self) -> Optional[list[str]]:
        sacct_command = super()._make_command()
        if sacct_command is None:  # nothing left to watch
            return None
        if self.use_sacct is None:
            self.use_sacct = accounting_enabled()
            if not self.use_sacct:
                log.info("SLURM accounting is off on this cluster (sacct fails): polling job states with squeue")
        if self.use_sacct:
            return sacct_command
        # every job of this user, finished ones included: asking for job ids slurmctld has forgotten is an error
        return ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%N", "--user", getpass.getuser()]

    def read_info(self, string: Union[bytes, str]) -> dict[str, dict[str, str]]:
        if self.use_sacct:
            return super().read_info(string)
        text = string.decode() if isinstance(string, bytes) else string
        info: dict[str, dict[str, str]] = {}
        for line in text.splitlines():
            job_id, state, nodes = (line.strip().split("|") + ["", ""])[:3]
            if job_id:
                info[job_id] = {"JobID": job_id, "State": state, "NodeList": nodes}
        for job_id in self._registered - self._finished:
            info.setdefault(job_id, {"JobID": job_id, "State": self.ENDED, "NodeList": ""})
        return info


def ended_without_result(job: Any, overrides: Sequence[str], job_dir: Optional[Path]) -> JobReturn:
    """A failure record like a failed job's for a sweep job whose submitit job ended without a result (also written
    to ``failure.json`` in its folder, when it got as far as creating one, for the sweep report)."""
    state = job.state  # from the watcher's last poll
    error = (
        f"{KILLED_FROM_OUTSIDE}: submitit job {job.job_id} ended ({state}) without a result "
        f"(out of memory, SIGKILL, time limit or node failure); its log: {job.paths.stdout.parent}"
    )
    log.error("job %s: %s", " ".join(filter_overrides(overrides)), error)
    failure = record_ended_without_result(job_dir, error, state=state)
    return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value={"failed": True, **failure})


def task_returns(job: Any, task: Task, sweep_dir: Path) -> list[JobReturn]:
    """The JobReturns of a task's sweep jobs: what its submitit job returned (one JobReturn, or a population's
    list), or for each of them a failure record when it ended without a result."""
    try:
        returned = job.results()[0]
    except UncompletedJobError:
        return [
            ended_without_result(job, sweep_job.overrides, find_job_dir(sweep_dir, sweep_job.number))
            for sweep_job in task.jobs
        ]
    return list(returned) if task.population else [returned]


def launch_and_collect(
    launcher: Any,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    plan: Callable[[Any, list[Job]], list[Task]] = one_task_per_job,
) -> list[JobReturn]:
    """Submit every task (one per job, or populations as ``plan`` makes them) as one array through submitit,
    then collect each on its own; the JobReturns in job order.

    ``launcher`` is one of hydra-submitit-launcher's launchers (its params, config and ``__call__``, which runs
    each job on its node, are used unchanged); a population runs rlrun.sweeps.population_jobs.execute_population.
    """
    import submitit

    from rlrun.sweeps.population_jobs import execute_population

    executor_name = launcher._EXECUTOR  # "slurm" or "local"
    params = dict(launcher.params)
    folder = params.pop("submitit_folder")
    executor_options = (
        {f"{executor_name}_max_num_timeout": params.pop("max_num_timeout")} if "max_num_timeout" in params else {}
    )
    executor = submitit.AutoExecutor(folder=folder, cluster=executor_name, **executor_options)
    shared_keys = set(OmegaConf.structured(BaseQueueConf).keys())  # keys every submitit executor takes
    executor.update_parameters(
        **{key if key in shared_keys else f"{executor_name}_{key}": value for key, value in params.items()}
    )
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    log.info("submitit %r sweep output dir: %s", executor_name, sweep_dir)

    jobs = [Job(initial_job_idx + index, list(overrides)) for index, overrides in enumerate(job_overrides)]
    tasks = plan(launcher, jobs)
    for task in tasks:
        log.info("\t%s", task.label)
    singleton_state = Singleton.get_state()
    with executor.batch():  # one array: submitted when the block ends
        submitted = [
            executor.submit(
                execute_population,
                [(job.number, job.overrides) for job in task.jobs],
                launcher.hydra_context,
                launcher.config,
                singleton_state,
            )
            if task.population
            else executor.submit(
                launcher,
                task.jobs[0].overrides,
                "hydra.sweep.dir",
                task.jobs[0].number,
                f"job_id_for_{task.jobs[0].number}",
                singleton_state,
            )
            for task in tasks
        ]
    if executor_name == "slurm":
        watcher = JobStateWatcher()
        for job in submitted:
            job.watcher = watcher  # shadows submitit's class-wide sacct watcher, for this sweep's jobs only
            watcher.register_job(job.job_id)
    for task, job in zip(tasks, submitted):
        for sweep_job, returned in zip(task.jobs, task_returns(job, task, sweep_dir)):
            sweep_job.result = returned
    return [cast(JobReturn, job.result) for job in jobs]  # every task returned one per job, or a record for each
