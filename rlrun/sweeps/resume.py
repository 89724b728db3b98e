"""``rlrun resume=SWEEP_DIR``: a stopped or partly failed sweep's own command again, continuing its jobs in place.

The command line comes from the sweep's ``multirun.yaml`` (Hydra's record of the overrides it ran with), so every job
gets its number and folder again. Each job then looks at its folder first (:func:`continue_job`): a finished job is
skipped, a job with ``checkpoints/last.pt`` resumes from it, any other (killed before its first checkpoint, never
started, failed) starts again.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf

from rlrun.errors import ConfigError
from rlrun.sweeps.job import EVAL_FILE, FAILURE_FILE, LAST_CHECKPOINT, RESULTS_FILE

CONTINUE_VARIABLE = "RLRUN_CONTINUE_SWEEP"  # set in every job of a continued sweep, through hydra.job.env_set
SWEEP_RECORD = "multirun.yaml"  # what Hydra saves in the sweep folder: the sweep's config and overrides
# The sweepers whose jobs are a fixed grid, continued job by job: Hydra's basic sweeper and rlrun's subclass of it
# (registered as ``basic``, hydra_plugins/rlrun_basic_sweeper/), which only names the job folders differently.
GRID_SWEEPERS = (
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
    "hydra_plugins.rlrun_basic_sweeper.basic_sweeper.RlrunBasicSweeper",
)

FINISHED, FROM_CHECKPOINT, START_AGAIN = "finished", "from checkpoint", "start again"


def sweep_command(args: list[str]) -> list[str]:
    """``args`` as they are, unless they continue a sweep (``resume=SWEEP_DIR``, no ``-m``): then the sweep's own
    multirun command line, into the same folder, with any ``hydra.*`` overrides of ``args`` after the saved ones."""
    if "-m" in args or "--multirun" in args:
        return args
    resumes = [arg for arg in args if arg.startswith("resume=")]
    if len(resumes) != 1:
        return args
    sweep_dir = Path(unquoted(resumes[0].split("=", 1)[1]))
    if not (sweep_dir / SWEEP_RECORD).is_file():
        return args  # a run folder: rlrun's single-run resume
    saved = OmegaConf.load(sweep_dir / SWEEP_RECORD).hydra
    sweeper = sweeper_of(sweep_dir)
    if sweeper not in GRID_SWEEPERS:
        raise ConfigError(
            f"resume={sweep_dir} is a sweep by {sweeper}, which rlrun cannot continue job by job. An Optuna study "
            f"continues from its storage: run the same command again with the same hydra.sweeper.storage and "
            f"hydra.sweeper.study_name (it only runs the missing trials)."
        )
    extra = [arg for arg in args if arg not in resumes]
    refused = [arg for arg in extra if not arg.lstrip("+~").startswith("hydra")]
    if refused:
        raise ConfigError(
            f"resume={sweep_dir} continues the sweep with the settings it started with, so it cannot take "
            f"{' '.join(refused)}. Only hydra.* overrides may be added (e.g. hydra.launcher.n_jobs=1); to change a "
            f"job's settings, start a new sweep, or resume that job on its own (rlrun resume=JOB_DIR total_steps=...)."
        )
    replaced = ("hydra.sweep.dir=", f"hydra.job.env_set.{CONTINUE_VARIABLE}=")  # set below
    hydra_overrides = [item for item in saved.overrides.hydra if not item.lstrip("+").startswith(replaced)]
    return [
        "-m",
        *hydra_overrides,
        *extra,
        *saved.overrides.task,
        f"hydra.sweep.dir={quoted(str(sweep_dir))}",
        f"++hydra.job.env_set.{CONTINUE_VARIABLE}=1",
    ]


def sweeper_of(sweep_dir: Path) -> Optional[str]:
    """The sweeper class that ran the sweep in ``sweep_dir`` (from its multirun.yaml), or None if none is recorded."""
    path = Path(sweep_dir) / SWEEP_RECORD
    return OmegaConf.select(OmegaConf.load(path), "hydra.sweeper._target_") if path.is_file() else None


def unquoted(value: str) -> str:
    """A Hydra override's value without the quotes it may carry (``resume="a,b"`` -> ``a,b``)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return re.sub(r"\\(['\"\\])", r"\1", value[1:-1])
    return value


def quoted(value: str) -> str:
    """``value`` as a Hydra override value: quoted when it has characters Hydra's grammar splits or resolves."""
    if re.search(r"[\s=,:'\"\[\](){}$\\]", value):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return value


def continue_job(run_dir: Path) -> Optional[str]:
    """How a job of a continued sweep goes on in its folder: FINISHED (skip it), FROM_CHECKPOINT (resume from
    last.pt) or START_AGAIN; None in a sweep that is not a continuation.

    Clears what the earlier attempt left that the new one would contradict: its failure.json, and, for a job that
    starts again, the TensorBoard events of the attempt (its curves would be drawn twice).
    """
    if not os.environ.get(CONTINUE_VARIABLE):
        return None
    run_dir = Path(run_dir)
    if (run_dir / RESULTS_FILE).is_file() or (run_dir / EVAL_FILE).is_file():
        return FINISHED
    (run_dir / FAILURE_FILE).unlink(missing_ok=True)
    if (run_dir / LAST_CHECKPOINT).is_file():
        return FROM_CHECKPOINT
    for events in run_dir.glob("events.out.tfevents*"):
        events.unlink()
    return START_AGAIN


def finished_results(run_dir: Path) -> dict[str, Any]:
    """What a finished job of an earlier attempt wrote (results.json, or eval.json for mode=evaluate)."""
    path = Path(run_dir) / RESULTS_FILE
    return json.loads((path if path.is_file() else Path(run_dir) / EVAL_FILE).read_text())
