"""Optuna studies for ``hydra/sweeper=optuna``: storage, sampler, pruner, search space and the trial objective.

Used by the sweeper plugin (hydra_plugins/rlrun_optuna_sweeper/) in the launching process, and by each job to
report its eval returns to its trial so the pruner can stop a bad run early. Built on current Optuna: the
``hydra-optuna-sweeper`` package pins ``optuna<3``, whose SQLite storage crashes under SQLAlchemy 2.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any, Optional

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Sweep, Transformer
from omegaconf import DictConfig

from rlrun.errors import ConfigError

log = logging.getLogger(__name__)

TRIAL_NUMBER_VARIABLE = "RLRUN_OPTUNA_TRIAL"  # the trial's number in its study, set per job through hydra.job.env_set
TRIAL_RUN_VARIABLE = "RLRUN_OPTUNA_TRIAL_RUN"  # which of the trial's seeds_per_trial runs a job is (0..K-1)
DEFAULT_JOURNAL = "optuna.journal"  # in the sweep dir when hydra.sweeper.storage is null
SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "none")
METRICS = ("last_evals_mean", "best_eval_return", "final_eval_return")
DIRECTIONS = ("maximize", "minimize")
AGGREGATES = ("iqm", "mean", "min")


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
    _allowed(
        isinstance(settings.seeds_per_trial, int) and settings.seeds_per_trial > 0,
        "seeds_per_trial",
        settings.seeds_per_trial,
        "a positive number of runs (seeds) per trial",
    )
    _allowed(settings.aggregate in AGGREGATES, "aggregate", settings.aggregate, f"one of {', '.join(AGGREGATES)}")


# ----------------------------------------------------------------------------- the study's parts
def storage_url(settings: DictConfig, sweep_dir: Path) -> str:
    """The storage as given, or a journal file in the sweep dir (jobs in other processes reach it to prune)."""
    return str(settings.storage) if settings.storage else str(Path(sweep_dir) / DEFAULT_JOURNAL)


def masked(url: str) -> str:
    """The storage URL with its password as ``***``, for logs and result files (a journal path is returned as is)."""
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can parse: show no credentials at all
        return url.split("://", 1)[0] + "://" + url.rsplit("@", 1)[-1]


def _rdb_storage(url: str, attempts: int = 5) -> optuna.storages.BaseStorage:
    """RDBStorage, retried: processes opening a fresh database at the same moment race to create its schema (an
    IntegrityError on alembic_version, or a table that appeared meanwhile, for the loser); once one has, the others
    can open it. Connection and login errors are not retried: they do not go away by themselves."""
    import sqlalchemy.exc

    races: tuple[type[Exception], ...] = (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)
    if url.startswith("sqlite"):
        races += (sqlalchemy.exc.OperationalError,)  # "database is locked" while another process writes the schema
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except races:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """``scheme://...`` is a database URL (sqlite:///study.db, postgresql://...); anything else a journal file.

    A storage that cannot be opened is a ConfigError saying what to install or check, before any trial starts.
    """
    if "://" in url:
        try:
            return _rdb_storage(url)
        except Exception as error:  # noqa: BLE001 - any failure to open it gets the same explained message
            raise ConfigError(storage_error(url, error)) from None
    try:
        from optuna.storages.journal import JournalFileBackend

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(url))
    except OSError as error:
        raise ConfigError(
            f"hydra.sweeper.storage={url}: cannot create the Optuna journal file ({error.strerror}). "
            f"Check that its folder can be created and written by this user."
        ) from None


DRIVER_PACKAGES = {"psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient"}  # module -> pip package, where they differ


def _missing_module(error: BaseException) -> Optional[str]:
    """The module whose import failed somewhere in the exception chain (Optuna wraps the driver's ImportError)."""
    while error is not None:
        if isinstance(error, ModuleNotFoundError) and error.name:
            return error.name
        error = error.__cause__ or error.__context__
    return None


def storage_error(url: str, error: BaseException) -> str:
    """One paragraph: the storage (password masked), its database, what went wrong and what to install or check."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not even a URL
        return (
            f"hydra.sweeper.storage={masked(url)!r} is not a database URL SQLAlchemy can read. Use a URL "
            f"such as postgresql://user:password@host:5432/studies or sqlite:///study.db, or a file path for an "
            f"Optuna journal file."
        )
    shown = masked(url)
    backend = parsed.get_backend_name()
    address = f"{parsed.host}:{parsed.port}" if parsed.port else str(parsed.host)
    where = f"SQLite file {parsed.database}" if backend == "sqlite" else f"database {parsed.database!r} on {address}"
    head = f"hydra.sweeper.storage={shown}: cannot open the Optuna storage, {where}"
    cause = getattr(error, "orig", None) or error
    detail = " ".join(str(cause).split("\n")[0].split())  # the driver's first line, without its prefix noise
    detail = detail.split("failed: ", 1)[-1] if "connection failed" in detail else detail
    if type(error).__name__ == "NoSuchModuleError":  # sqlalchemy.exc: an unknown scheme, e.g. postgres://
        return (
            f"{head}: SQLAlchemy knows no database kind {parsed.drivername!r}. Use postgresql://, mysql:// or "
            f"sqlite:/// (postgres:// is spelt postgresql:// since SQLAlchemy 1.4)."
        )
    missing = _missing_module(error)
    if missing is not None:
        install = (
            'pip install "rlrun[postgres]" (psycopg 3)'
            if missing == "psycopg"
            else f"pip install {DRIVER_PACKAGES.get(missing, missing)}"
        )
        plain = (
            ' A plain postgresql:// URL uses psycopg 3: pip install "rlrun[postgres]".'
            if backend == "postgresql" and missing != "psycopg"
            else ""
        )
        return (
            f"{head}: its database driver is not installed (no module named {missing!r}). Install it: {install}.{plain}"
        )
    lowered = detail.lower()
    if "refused" in lowered or "could not connect" in lowered or "timeout" in lowered or "timed out" in lowered:
        return (
            f"{head}: nothing answers at {address} ({detail}). Check that "
            f"the database server is running and listens on that host and port (for PostgreSQL: pg_isready -h "
            f"{parsed.host} -p {parsed.port or 5432}), and that this machine may reach it."
        )
    if "password" in lowered or "authentication" in lowered or "access denied" in lowered:
        return (
            f"{head}: the server refused the login of user {parsed.username!r} ({detail}). Check the user name and "
            f"password in the URL, and that the server admits this user from this host (pg_hba.conf)."
        )
    if "does not exist" in lowered or "unknown database" in lowered:
        return (
            f"{head}: the server has no database {parsed.database!r} ({detail}). Create it first (for PostgreSQL: "
            f"createdb -h {parsed.host} -U {parsed.username} {parsed.database}) or name an existing one."
        )
    if backend == "sqlite":
        return f"{head}: {detail}. Check that its folder exists and this user may write there."
    return (
        f"{head}: {detail}. Check the URL, that the server is running, and that the user may connect to that database."
    )


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
    return optuna.pruners.MedianPruner(
        n_startup_trials=settings.pruner_startup_trials, n_warmup_steps=settings.pruner_warmup_steps
    )


def objective(results: dict[str, Any], metric: str, last_evals: int) -> float:
    """The number a trial is judged by, from the run's results (see rlrun/loop.py's results.json)."""
    if metric == "last_evals_mean":
        returns = [mean for _, mean in results["eval_history"][-last_evals:]]
        return statistics.fmean(returns)
    return float(results[metric])


def aggregate(values: list[float], how: str) -> float:
    """A trial's number from its runs' numbers: their interquartile mean, mean or minimum (rlrun.stats)."""
    import numpy as np

    from rlrun import stats

    if how == "min":
        return float(min(values))
    return float(stats.AGGREGATES[how](np.asarray(values, dtype=np.float64)))


def trial_seeds(trial_number: int, runs: int, base: int = 0) -> list[int]:
    """The seeds of a trial's runs: trials never share one, and a resumed study gives a trial the same ones."""
    return [base + trial_number * runs + run for run in range(runs)]


# ----------------------------------------------------------------------------- search space
def parse_search_space(
    params: dict[str, str], arguments: list[str], parser: OverridesParser
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
    assert isinstance(sweep, Sweep)  # search_space() passes sweep overrides only
    log_scale = "log" in sweep.tags
    if isinstance(sweep, IntervalSweep):  # interval(a, b): float; int(interval(a, b)): int; tag(log, ...): log
        assert sweep.start is not None and sweep.end is not None  # the grammar requires both bounds
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return optuna.distributions.IntDistribution(sweep.start, sweep.end, log=log_scale)
        return optuna.distributions.FloatDistribution(sweep.start, sweep.end, log=log_scale)
    if isinstance(sweep, RangeSweep) and not sweep.shuffle:  # range(start, stop, step): stop excluded, as Python
        values = list(sweep.range())
        if not values:
            raise ConfigError(f"{key}={override.get_value_element_as_str()} is an empty range: give start < stop.")
        if all(isinstance(v, int) for v in (sweep.start, sweep.stop, sweep.step)):
            return optuna.distributions.IntDistribution(values[0], values[-1], step=int(sweep.step), log=log_scale)
        return optuna.distributions.FloatDistribution(values[0], values[-1], step=float(sweep.step))
    if isinstance(sweep, (ChoiceSweep, RangeSweep)):  # choice(a, b), a,b, shuffle(range(...)): categorical
        choices = [
            value if isinstance(value, (str, int, float, bool)) else str(value)
            for value in override.sweep_iterator(transformer=Transformer.encode)
        ]
        return optuna.distributions.CategoricalDistribution(choices)
    raise ConfigError(
        f"{key}={override.get_value_element_as_str()}: hydra/sweeper=optuna understands "
        f"interval(a,b), int(interval(a,b)), range(start,stop[,step]), choice(a,b,...), a,b,... "
        f"and tag(log, interval(...))."
    )


def override_for(key: str, value: Any) -> str:
    return f"{key}={str(value).lower() if isinstance(value, bool) else value}"


# ----------------------------------------------------------------------------- the job's side
class TrialReporter:
    """Reports each eval return to the job's trial and asks the study's pruner whether to stop.

    Works through Optuna's public storage and pruner interfaces: the job holds the storage's id of its trial
    (looked up from the study-local trial number), not a ``Trial`` object, which only the sweeper's process has.
    """

    def __init__(
        self,
        study: optuna.Study,
        storage: optuna.storages.BaseStorage,
        trial_id: int,
        pruner: optuna.pruners.BasePruner,
        run: Optional[int] = None,
        how: str = "iqm",
    ):
        self.study, self.storage, self.trial_id, self.pruner = study, storage, trial_id, pruner
        self.run, self.how = run, how  # run: which of the trial's seeds_per_trial runs, None when it has one
        self.pruned_at_step: Optional[int] = None

    def __call__(self, step: int, mean_return: float) -> bool:
        self.storage.set_trial_intermediate_value(self.trial_id, step, self.trial_value(step, mean_return))
        if self.pruner.prune(self.study, self.storage.get_trial(self.trial_id)):
            self.pruned_at_step = step
            return True
        return False

    def trial_value(self, step: int, mean_return: float) -> float:
        """What the pruner compares at ``step``: this run's return, or, for a trial of several runs, the aggregate
        of the returns its runs have reported at that step (each run keeps its own in a trial user attribute)."""
        if self.run is None:
            return mean_return
        self.storage.set_trial_user_attr(self.trial_id, run_eval_key(self.run, step), mean_return)
        attrs = self.storage.get_trial(self.trial_id).user_attrs
        reported = [value for key, value in attrs.items() if key.startswith("eval:") and key.endswith(f":{step}")]
        return aggregate(reported, self.how)


def run_eval_key(run: int, step: int) -> str:
    return f"eval:{run}:{step}"


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
        run = os.environ.get(TRIAL_RUN_VARIABLE)
        return TrialReporter(
            study, storage, trial_id, pruner, None if run is None else int(run), settings.get("aggregate", "iqm")
        )
    except Exception as error:  # noqa: BLE001 - pruning is an optimisation; the run itself must go on
        log.warning("cannot reach the Optuna study to report eval returns (%s); this trial runs without pruning", error)
        return None
