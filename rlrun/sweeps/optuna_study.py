"""Optuna studies for ``hydra/sweeper=optuna``: storage, sampler, pruner, search space and the trial objective.

Used by the sweeper plugin (hydra_plugins/rlrun_optuna_sweeper/) in the launching process, and by each job to
report its eval returns to its trial so the pruner can stop a bad run early. Built on current Optuna: the
``hydra-optuna-sweeper`` package pins ``optuna<3``, whose SQLite storage crashes under SQLAlchemy 2.
"""

from __future__ import annotations

import logging
import os
import statistics
from pathlib import Path
from typing import Any, Optional

import time

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from omegaconf import DictConfig

from rlrun.errors import ConfigError

log = logging.getLogger(__name__)

TRIAL_NUMBER_VARIABLE = "RLRUN_OPTUNA_TRIAL"  # the trial's number in its study, set per job through hydra.job.env_set
DEFAULT_JOURNAL = "optuna.journal"  # in the sweep dir when hydra.sweeper.storage is null
SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "none")
METRICS = ("last_evals_mean", "best_eval_return", "final_eval_return")
DIRECTIONS = ("maximize", "minimize")


def _allowed(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"hydra.sweeper.{key}={value!r} is not allowed: it must be {allowed}.")


def check_settings(settings: DictConfig) -> None:
    """Reject sweeper settings that would fail late, naming the key and what is accepted."""
    _allowed(settings.sampler in SAMPLERS, "sampler", settings.sampler, f"one of {', '.join(SAMPLERS)}")
    _allowed(settings.pruner in PRUNERS, "pruner", settings.pruner, f"one of {', '.join(PRUNERS)}")
    _allowed(settings.metric in METRICS, "metric", settings.metric, f"one of {', '.join(METRICS)}")
    _allowed(settings.direction in DIRECTIONS, "direction", settings.direction, "maximize or minimize")
    _allowed(settings.n_trials > 0, "n_trials", settings.n_trials, "a positive number of trials")
    _allowed(settings.n_jobs > 0, "n_jobs", settings.n_jobs, "a positive number of trials run at once")
    _allowed(settings.last_evals > 0, "last_evals", settings.last_evals, "a positive number of evaluations")


# ----------------------------------------------------------------------------- the study's parts
def storage_url(settings: DictConfig, sweep_dir: Path) -> str:
    """The storage as given, or a journal file in the sweep dir (jobs in other processes reach it to prune)."""
    return str(settings.storage) if settings.storage else str(Path(sweep_dir) / DEFAULT_JOURNAL)


def _rdb_storage(url: str, attempts: int = 5) -> optuna.storages.BaseStorage:
    """RDBStorage, retried: processes opening a fresh SQLite file at the same moment race to create its
    schema (an IntegrityError on alembic_version for the loser); once one has, the others can open it."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """``scheme://...`` is a database URL (sqlite:///study.db, postgresql://...); anything else a journal file."""
    if "://" in url:
        return _rdb_storage(url)
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))


def build_sampler(settings: DictConfig) -> optuna.samplers.BaseSampler:
    seed = settings.seed
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def build_pruner(settings: DictConfig) -> optuna.pruners.BasePruner:
    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=settings.pruner_startup_trials,
                                       n_warmup_steps=settings.pruner_warmup_steps)


def objective(results: dict[str, Any], metric: str, last_evals: int) -> float:
    """The number a trial is judged by, from the run's results (see rlrun/loop.py's results.json)."""
    if metric == "last_evals_mean":
        returns = [mean for _, mean in results["eval_history"][-last_evals:]]
        return statistics.fmean(returns)
    return float(results[metric])


# ----------------------------------------------------------------------------- search space
def parse_search_space(params: dict[str, str], arguments: list[str], parser: OverridesParser
                       ) -> tuple[dict[str, optuna.distributions.BaseDistribution], list[str]]:
    """Split overrides into Optuna distributions (keyed by override key) and fixed overrides for every trial.

    ``hydra.sweeper.params`` come first; a command-line override of the same key replaces its entry.
    """
    by_key: dict[str, Override] = {}
    for override in parser.parse_overrides([f"{key}={value}" for key, value in params.items()] + list(arguments)):
        by_key[override.get_key_element()] = override
    space, fixed = {}, []
    for key, override in by_key.items():
        if override.is_sweep_override():
            space[key] = distribution(key, override)
        else:
            fixed.append(f"{key}={override.get_value_element_as_str()}")
    return space, fixed


def distribution(key: str, override: Override) -> optuna.distributions.BaseDistribution:
    """Hydra's sweep syntax as Optuna distributions, with the meanings of Hydra's own Optuna sweeper."""
    sweep = override.value()
    log_scale = "log" in sweep.tags
    if isinstance(sweep, IntervalSweep):  # interval(a, b): float; int(interval(a, b)): int; tag(log, ...): log
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return optuna.distributions.IntDistribution(sweep.start, sweep.end, log=log_scale)
        return optuna.distributions.FloatDistribution(sweep.start, sweep.end, log=log_scale)
    if isinstance(sweep, RangeSweep) and not sweep.shuffle:  # range(start, stop, step): stop excluded, as Python
        values = list(sweep.range())
        if not values:
            raise ConfigError(f"{key}={override.get_value_element_as_str()} is an empty range: give start < stop.")
        if all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)):
            return optuna.distributions.IntDistribution(values[0], values[-1], step=sweep.step, log=log_scale)
        return optuna.distributions.FloatDistribution(values[0], values[-1], step=float(sweep.step))
    if isinstance(sweep, (ChoiceSweep, RangeSweep)):  # choice(a, b), a,b, shuffle(range(...)): categorical
        choices = [value if isinstance(value, (str, int, float, bool)) else str(value)
                   for value in override.sweep_iterator(transformer=Transformer.encode)]
        return optuna.distributions.CategoricalDistribution(choices)
    raise ConfigError(f"{key}={override.get_value_element_as_str()}: hydra/sweeper=optuna understands "
                      f"interval(a,b), int(interval(a,b)), range(start,stop[,step]), choice(a,b,...), a,b,... "
                      f"and tag(log, interval(...)).")


def override_for(key: str, value: Any) -> str:
    return f"{key}={str(value).lower() if isinstance(value, bool) else value}"


# ----------------------------------------------------------------------------- the job's side
class TrialReporter:
    """Reports each eval return to the job's trial and asks the study's pruner whether to stop.

    Works through Optuna's public storage and pruner interfaces: the job holds the storage's id of its trial
    (looked up from the study-local trial number), not a ``Trial`` object, which only the sweeper's process has.
    """

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage, trial_id: int,
                 pruner: optuna.pruners.BasePruner):
        self.study, self.storage, self.trial_id, self.pruner = study, storage, trial_id, pruner
        self.pruned_at_step: Optional[int] = None

    def __call__(self, step: int, mean_return: float) -> bool:
        self.storage.set_trial_intermediate_value(self.trial_id, step, mean_return)
        if self.pruner.prune(self.study, self.storage.get_trial(self.trial_id)):
            self.pruned_at_step = step
            return True
        return False


def trial_listener() -> Optional[TrialReporter]:
    """The reporter for this job's Optuna trial, or None outside an Optuna sweep (or if its storage is unreachable).

    An unreachable storage (e.g. a journal file on a disk the cluster node cannot see) costs only live pruning:
    the sweeper still records the trial's result and eval history when the job returns.
    """
    trial_number = os.environ.get(TRIAL_NUMBER_VARIABLE)
    if trial_number is None:
        return None
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    settings = hydra_cfg.sweeper
    try:
        storage = open_storage(storage_url(settings, Path(hydra_cfg.sweep.dir)))
        pruner = build_pruner(settings)
        study = optuna.load_study(study_name=settings.study_name, storage=storage, pruner=pruner)
        study_id = storage.get_study_id_from_name(settings.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(trial_number))
        return TrialReporter(study, storage, trial_id, pruner)
    except Exception as error:  # noqa: BLE001 - pruning is an optimisation; the run itself must go on
        log.warning("cannot reach the Optuna study to report eval returns (%s); this trial runs without pruning",
                    error)
        return None
