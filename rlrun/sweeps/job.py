"""One multirun job: record a failure instead of raising it, so one bad config cannot stop the sweep.

Hydra's launchers catch ``Exception`` per job but not ``SystemExit``, and the basic sweeper re-raises the first
failure once the batch is done, which skips the sweep report. A sweep job therefore never raises: it writes
``failure.json`` in its run directory and returns ``{"failed": True, "error": ...}``. So does a run stopped by a
signal (it saved ``last.pt``), with the command that resumes it.
"""

from __future__ import annotations

import json
import logging
import signal
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from rlrun.errors import ConfigError

log = logging.getLogger(__name__)

FAILURE_FILE = "failure.json"
RESULTS_FILE = "results.json"
EVAL_FILE = "eval.json"  # what a mode=evaluate job writes instead of results.json
LAST_CHECKPOINT = Path("checkpoints") / "last.pt"
KILLED_FROM_OUTSIDE = "killed from outside"  # the error "type" of a job that left no result
NOT_STARTED = "not started"  # the error "type" of a job that a stopped sweep never started

EvalListener = Callable[[int, float], bool]  # (env step, greedy mean return) -> stop training now?


def run_sweep_job(
    train_or_evaluate: Callable[[Optional[EvalListener]], dict],
    run_dir: Path,
    eval_listener: Optional[EvalListener] = None,
) -> dict[str, Any]:
    """Run one job and return its results, or a failure record; never raises (except KeyboardInterrupt)."""
    run_dir = Path(run_dir)
    try:
        result = train_or_evaluate(eval_listener)
    except (Exception, SystemExit) as error:  # SystemExit too: a library calling sys.exit must not end the sweep
        message = str(error) or type(error).__name__
        failure = {"error": message, "type": type(error).__name__}
        if not isinstance(error, ConfigError):  # a bug, not a bad value: keep the traceback for whoever fixes it
            failure["traceback"] = traceback.format_exc()
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / FAILURE_FILE).write_text(json.dumps(failure, indent=2))
        log.error("job failed (%s): %s", type(error).__name__, message)
        return {"failed": True, **failure}
    if isinstance(result, dict) and result.get("interrupted_by"):
        return record_interruption(run_dir, result["interrupted_by"], result.get("steps"))
    pruned_at_step = getattr(eval_listener, "pruned_at_step", None)
    if pruned_at_step is not None:
        mark_pruned(run_dir, pruned_at_step)
    return {**(result if isinstance(result, dict) else {}), "failed": False, "pruned_at_step": pruned_at_step}


def record_interruption(run_dir: Path, signal_number: int, step: Optional[int]) -> dict[str, Any]:
    """A run stopped by SIGTERM/SIGINT (scancel, a SLURM time limit, preemption) saved last.pt: say how to go on.

    It is a failure for the sweep (no results.json, no objective), but one that ``resume=`` continues.
    """
    from rlrun.loop import resume_command  # torch and the envs: imported only when a run was interrupted

    name = signal.Signals(signal_number).name
    cause = (
        "Ctrl-C, or a stop of its sweep" if signal_number == signal.SIGINT else "scancel, a time limit or preemption"
    )
    error = (
        f"stopped from outside by {name} at env step {step} ({cause}); "
        f"checkpoints/last.pt is saved: continue with {resume_command(run_dir)}"
    )
    failure = {"error": error, "type": "interrupted", "signal": name, "step": step}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FAILURE_FILE).write_text(json.dumps(failure, indent=2))
    return {"failed": True, **failure}


def record_ended_without_result(
    job_dir: Optional[Path], error: str, kind: str = KILLED_FROM_OUTSIDE, **details: Any
) -> dict[str, Any]:
    """The failure record of a job that left no result (killed from outside, out of memory, a node failure),
    written by its launcher to the job's ``failure.json`` unless the job wrote its own outcome first.

    Says how to go on: ``resume=`` from its ``last.pt`` when it saved one, else that its sweep starts it again.
    """
    failure: dict[str, Any] = {"error": error, "type": kind, **details}
    if job_dir is None:
        return failure
    if (job_dir / LAST_CHECKPOINT).is_file():
        from rlrun.loop import resume_command  # torch and the envs: imported only when a job was lost

        failure["resume"] = resume_command(job_dir)
        failure["error"] += f"; {LAST_CHECKPOINT} is its last checkpoint: continue with {failure['resume']}"
    else:
        failure["error"] += "; it saved no checkpoint: continuing its sweep (rlrun resume=SWEEP_DIR) starts it again"
    if job_dir.is_dir() and not any((job_dir / name).exists() for name in (RESULTS_FILE, EVAL_FILE, FAILURE_FILE)):
        (job_dir / FAILURE_FILE).write_text(json.dumps(failure, indent=2))
    return failure


def find_job_dir(sweep_dir: Path, number: int) -> Optional[Path]:
    """The folder of job ``number`` (``3`` or ``3_agent=dqn,...``, see plugins.job_folder), if it was created."""
    folders = [
        path
        for path in Path(sweep_dir).glob(f"{number}*")
        if (path.name == str(number) or path.name.startswith(f"{number}_")) and (path / ".hydra").is_dir()
    ]
    return folders[0] if len(folders) == 1 else None


def mark_pruned(run_dir: Path, step: int) -> None:
    """Note in results.json that the sweeper stopped this run, so the report does not mistake it for a full run."""
    path = run_dir / RESULTS_FILE
    if path.is_file():
        results = json.loads(path.read_text())
        results["pruned_at_step"] = step
        path.write_text(json.dumps(results, indent=2))
