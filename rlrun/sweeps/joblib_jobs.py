"""Running the jobs of ``hydra/launcher=joblib`` (rlrun's default) in worker processes of rlrun's own, sweep-safe.

hydra-joblib-launcher runs the jobs in a loky process pool. When one worker dies (the out-of-memory killer, SIGKILL),
loky marks the pool broken and terminates the other workers mid-job (no checkpoint), and joblib raises
TerminatedWorkerError, which ends the sweep before its report. Here (called by rlrun's launcher in
hydra_plugins/rlrun_joblib_launcher/) ``n_jobs`` worker processes run the jobs one after another, as loky's do, each
job exactly as a loky worker runs it (Hydra's ``execute_job``). A worker that dies loses only the job it was running,
which is recorded as killed, like a failed job; the other workers go on and a new one takes the next job.

A SIGINT or SIGTERM to the sweep process is passed on to every running job, once (workers are in sessions of their
own, so Ctrl-C in a terminal reaches them only this way): each saves ``last.pt`` and records the interruption. No job
starts after it; those not started are listed in ``stopped.json`` for the report.

Each worker runs a task at a time: one job, or (``hydra/launcher=population``, rlrun/sweeps/population_jobs.py) a
population of jobs trained together, whose jobs are recorded one by one as above.

Of the launcher's settings, ``n_jobs`` (joblib's meaning: -1 is every core) and ``timeout`` (seconds; a job past it
gets SIGTERM, so it saves ``last.pt``) apply. The rest tune how joblib batches and ships tasks to a pool and have no
counterpart here; ``backend`` is processes, as hydra-joblib-launcher hard-codes loky.
"""

from __future__ import annotations

import json
import logging
import pickle
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe, wait
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, cast

import cloudpickle
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from joblib import effective_n_jobs

from rlrun.sweeps.job import KILLED_FROM_OUTSIDE, NOT_STARTED, find_job_dir, record_ended_without_result
from rlrun.sweeps.report import STOPPED_FILE

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A worker process: the sweep's sys.path first (as multiprocessing's spawn does), then its loop over jobs.
WORKER_CODE = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
    "from rlrun.sweeps.joblib_jobs import worker_main; worker_main(int(sys.argv[1]))"
)
SUMMARY_REFRESH_SECONDS = 30.0  # as jobs end, the sweep's TensorBoard summary run is rewritten at most this often
READY = b"ready"  # a worker's message when it can take a job (and a signal): after starting, and after each job


@dataclass
class Job:
    """One job of the sweep, as the sweep process sees it."""

    number: int
    overrides: list[str]
    result: Optional[JobReturn] = None
    raised: Optional[BaseException] = None  # Hydra could not even set the job up

    @property
    def label(self) -> str:
        return f"#{self.number} {' '.join(filter_overrides(self.overrides))}"


@dataclass
class Task:
    """What one worker process runs at a time: one job, or a population of jobs trained together
    (hydra/launcher=population, rlrun/sweeps/population_jobs.py)."""

    jobs: list[Job]
    population: bool = False
    started_at: float = 0.0
    signalled: Optional[int] = None  # the signal the sweep passed on to it

    @property
    def label(self) -> str:
        if not self.population:
            return self.jobs[0].label
        numbers = ", ".join(f"#{job.number}" for job in self.jobs)
        return f"population of {len(self.jobs)} jobs ({numbers}): {' '.join(filter_overrides(self.jobs[0].overrides))}"


@dataclass
class Worker:
    """A process that runs jobs one after another, like a loky worker; when it dies, only its job is lost."""

    process: subprocess.Popen
    connection: Connection
    task: Optional[Task] = None  # the job (or population) it is running
    has_context: bool = False  # it was sent the Hydra context and task function (with its first job)


@dataclass
class SweepStop:
    """The first SIGINT/SIGTERM to the sweep process, passed on to every running job (a second one is too: the jobs
    then stop at once, as a run does on a second Ctrl-C; a third one ends the sweep process)."""

    workers: list[Worker]
    signal: Optional[int] = None
    previous: dict[int, Any] = field(default_factory=dict)

    def __enter__(self) -> SweepStop:
        self.previous = {sig: signal.signal(sig, self.handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def handle(self, signum: int, frame: Any) -> None:
        if self.signal is None:
            log.warning(
                "%s: stopping the sweep; its running jobs save checkpoints/last.pt, no other job starts",
                signal.Signals(signum).name,
            )
        else:
            for sig, handler in self.previous.items():
                signal.signal(sig, handler)
        self.signal = signum
        for worker in self.workers:
            if worker.task is not None:  # a worker still starting is given no job (launch_jobs)
                send_signal(worker, signum)


def send_signal(worker: Worker, signum: int) -> None:
    assert worker.task is not None  # only workers running a task are signalled
    worker.task.signalled = signum
    with suppress(ProcessLookupError):  # it has just ended
        worker.process.send_signal(signum)


def one_task_per_job(launcher: Any, jobs: list[Job]) -> list[Task]:
    return [Task([job]) for job in jobs]


def launch_jobs(
    launcher: Any,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    plan: Callable[[Any, list[Job]], list[Task]] = one_task_per_job,
) -> list[JobReturn]:
    """Run the jobs in worker processes, ``n_jobs`` tasks at a time; return their JobReturns in job order.

    ``launcher`` is hydra-joblib-launcher's JoblibLauncher (its settings, config, task function and Hydra context
    are used unchanged), with ``stopped_by``: the signal that stopped an earlier batch of this sweep, if any.
    ``plan`` makes the tasks of the jobs: one per job here, populations for hydra/launcher=population.
    """
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    settings = launcher.joblib
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    jobs = [Job(initial_job_idx + index, list(overrides)) for index, overrides in enumerate(job_overrides)]
    if launcher.stopped_by is not None:
        return finish(launcher, sweep_dir, jobs)

    tasks = plan(launcher, jobs)
    at_once = min(len(tasks), max(1, effective_n_jobs(settings.get("n_jobs"))))
    timeout = settings.get("timeout")
    if plan is one_task_per_job:
        log.info(
            "Launching %d jobs, %d at a time, in processes of their own (hydra/launcher=joblib); sweep output dir: %s",
            len(jobs),
            at_once,
            sweep_dir,
        )
    else:
        log.info(
            "Launching %d jobs as %d processes (populations and ordinary jobs), %d at a time "
            "(hydra/launcher=population); sweep output dir: %s",
            len(jobs),
            len(tasks),
            at_once,
            sweep_dir,
        )
    for task in tasks:
        log.info("\t%s", task.label)
    # Pickled by value where needed (the task function is not importable by name), as loky ships it to its workers.
    context = cloudpickle.dumps(
        (launcher.hydra_context, launcher.config, launcher.task_function, Singleton.get_state())
    )
    pending: list[Task] = list(tasks)
    refreshed_at, ended = time.monotonic(), 0
    workers: list[Worker] = []
    leaving: list[Worker] = []  # told there is nothing more to do: they exit by themselves
    with SweepStop(workers) as stop:
        while (pending and stop.signal is None) or busy(workers):
            while stop.signal is None and len(workers) < min(at_once, len(pending) + busy(workers)):
                workers.append(start_worker())
            wait([worker.connection for worker in workers], timeout=1.0 if timeout else None)
            for worker in list(workers):
                if worker.connection.poll() and receive(worker) == READY:
                    if pending and stop.signal is None:
                        hand_over(worker, pending.pop(0), context)
                        if stop.signal is not None:  # the stop came while it was handed the job: not passed on
                            send_signal(worker, stop.signal)
                    else:
                        worker.connection.close()
                        workers.remove(worker)
                        leaving.append(worker)
                        continue
                if worker.connection.closed or worker.process.poll() is not None:
                    retire(worker, sweep_dir, stopping=stop.signal is not None)
                    workers.remove(worker)
                elif (
                    timeout
                    and worker.task
                    and worker.task.signalled is None
                    and time.monotonic() - worker.task.started_at > timeout
                ):
                    log.error(
                        "%s: running for over hydra.launcher.timeout=%s s: sending SIGTERM", worker.task.label, timeout
                    )
                    send_signal(worker, signal.SIGTERM)
            now_ended = sum(job.result is not None for job in jobs)
            if (
                now_ended > ended
                and (pending or busy(workers))
                and stop.signal is None
                and time.monotonic() - refreshed_at > SUMMARY_REFRESH_SECONDS
            ):
                refresh_summary_run(sweep_dir)
                refreshed_at, ended = time.monotonic(), now_ended
        for worker in workers + leaving:
            worker.connection.close()  # an idle worker exits on it
            if not worker.has_context:
                worker.process.kill()  # still starting when the sweep was stopped: it has no job to lose
        for worker in workers + leaving:
            worker.process.wait()
        launcher.stopped_by = stop.signal
    return finish(launcher, sweep_dir, jobs)


def refresh_summary_run(sweep_dir: Path) -> None:
    """Rewrite the sweep's TensorBoard summary run from the jobs so far, so a long sweep shows its configs while it
    runs (the sweep report rewrites it at the end). A failure here costs only the refresh."""
    try:
        from rlrun.sweeps.report import collect_jobs, summarize_jobs
        from rlrun.sweeps.summary_run import write_summary_run

        if write_summary_run(sweep_dir, summarize_jobs(collect_jobs(sweep_dir))) is not None:
            log.info("TensorBoard summary run refreshed from the jobs so far: %s", sweep_dir / "summary")
    except Exception as error:  # noqa: BLE001 - a half-written job folder, a full disk: the sweep goes on
        log.warning("could not refresh the sweep's TensorBoard summary run: %s", error)


def busy(workers: list[Worker]) -> int:
    return sum(worker.task is not None for worker in workers)


def start_worker() -> Worker:
    ours, theirs = Pipe()
    # A session of its own: Ctrl-C in the terminal reaches the sweep process only, which passes it on exactly once.
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER_CODE, str(theirs.fileno()), json.dumps(sys.path)],
        pass_fds=[theirs.fileno()],
        start_new_session=True,
    )
    theirs.close()
    return Worker(process, ours)


def receive(worker: Worker) -> Optional[bytes]:
    """Read a worker's next message: READY, or its task's outcome (kept on the jobs); None once the worker has ended.

    A population's outcome is one JobReturn per member, in its jobs' order."""
    try:
        message = worker.connection.recv_bytes()
    except (EOFError, OSError):
        worker.connection.close()
        return None
    if message != READY and worker.task is not None:
        outcome, value = cloudpickle.loads(message)
        values = value if worker.task.population and outcome == "returned" else [value] * len(worker.task.jobs)
        for job, job_value in zip(worker.task.jobs, values):
            if outcome == "returned":
                job.result = job_value
            else:
                job.raised = job_value
        log.info("%s: ended", worker.task.label)
        worker.task = None
    return message


def hand_over(worker: Worker, task: Task, context: bytes) -> None:
    """Give a READY worker its next task; from then on a stop of the sweep is passed on to it."""
    try:
        worker.connection.send_bytes(b"" if worker.has_context else context)
        worker.connection.send_bytes(
            pickle.dumps((task.population, [(job.number, job.overrides) for job in task.jobs]))
        )
    except OSError:
        worker.connection.close()  # it died as it was handed the task: recorded by retire()
    worker.task, task.started_at, worker.has_context = task, time.monotonic(), True


def retire(worker: Worker, sweep_dir: Path, stopping: bool) -> None:
    """The worker has ended: take its last messages, reap it, and record its jobs if they left no result."""
    while not worker.connection.closed and worker.connection.poll():
        receive(worker)
    code = worker.process.wait()
    worker.connection.close()
    task = worker.task
    if task is None:
        return
    for job in task.jobs:
        if job.result is None:
            record_lost_job(job, task, code, sweep_dir, stopping)


def record_lost_job(job: Job, task: Task, code: int, sweep_dir: Path, stopping: bool) -> None:
    """A job whose worker ended without its result: recorded as killed or interrupted, with how to go on."""
    job_dir = find_job_dir(sweep_dir, job.number)
    if stopping and job_dir is None:
        return  # stopped before Hydra made its folder: reported as not started
    if task.signalled is not None:
        name = signal.Signals(task.signalled).name
        error = f"stopped by {name}, sent by the sweep, before it could record itself"
        failure = record_ended_without_result(job_dir, error, kind="interrupted", signal=name)
    elif code < 0:
        name = signal.Signals(-code).name
        note = " (as the out-of-memory killer does)" if name == "SIGKILL" else ""
        error = f"{KILLED_FROM_OUTSIDE} by {name}{note}"
        failure = record_ended_without_result(job_dir, error, signal=name)
    else:
        error = f"{KILLED_FROM_OUTSIDE}: its process ended with exit status {code} and no result"
        failure = record_ended_without_result(job_dir, error, exit_status=code)
    log.error("%s: %s", job.label, failure["error"])
    job.result = JobReturn(
        overrides=job.overrides, status=JobStatus.COMPLETED, _return_value={"failed": True, **failure}
    )


def finish(launcher: Any, sweep_dir: Path, jobs: list[Job]) -> list[JobReturn]:
    """The JobReturns in job order. After a stop, the jobs left without a result were not started: they get a
    failure record and are listed in stopped.json. A job that Hydra could not set up raises its error, as
    hydra-joblib-launcher would."""
    raised = next((job.raised for job in jobs if job.raised is not None), None)
    if raised is not None:
        raise raised
    not_started = [job for job in jobs if job.result is None]
    if launcher.stopped_by is not None:
        name = signal.Signals(launcher.stopped_by).name
        path = sweep_dir / STOPPED_FILE
        stop: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"signal": name, "not_started": []}
        stop["not_started"] += [job.label for job in not_started]
        path.write_text(json.dumps(stop, indent=2))
        for job in not_started:
            job.result = JobReturn(
                overrides=job.overrides,
                status=JobStatus.COMPLETED,
                _return_value={
                    "failed": True,
                    "type": NOT_STARTED,
                    "error": f"not started: the sweep was stopped by {name}",
                },
            )
    return [cast(JobReturn, job.result) for job in jobs]  # every job has one now: its own, or the record above


def worker_main(fd: int) -> None:
    """A worker process: say READY, take a job, run it as a loky worker would, send back its JobReturn; again."""
    from hydra_plugins.hydra_joblib_launcher._core import execute_job

    connection = Connection(fd)
    context = None
    try:
        while True:
            try:
                connection.send_bytes(READY)
                shipped = connection.recv_bytes()
                population, jobs = pickle.loads(connection.recv_bytes())
            except (EOFError, OSError):
                return  # no more jobs
            context = cloudpickle.loads(shipped) if shipped else context
            assert context is not None  # a worker's first job comes with the context
            hydra_context, config, task_function, singleton_state = context
            try:
                if population:
                    from rlrun.sweeps.population_jobs import execute_population

                    returned = execute_population(jobs, hydra_context, config, singleton_state)
                else:
                    ((number, overrides),) = jobs
                    returned = execute_job(number, overrides, hydra_context, config, task_function, singleton_state)
                outcome = ("returned", returned)
            except Exception as error:  # Hydra could not set the job up: the sweep raises it, as joblib would
                outcome = ("raised", error)
            try:
                connection.send_bytes(cloudpickle.dumps(outcome))
            except OSError:
                return  # the sweep process has gone; the job's own files say how it ended
    except KeyboardInterrupt:
        # SIGINT before the run could catch it (still building its env): the sweep records the job as interrupted
        sys.exit(128 + signal.SIGINT)
