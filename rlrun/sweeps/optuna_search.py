"""Drive an Optuna study through a Hydra launcher: ask trials, launch them as jobs, tell their results.

Trials are launched in batches of ``n_jobs`` through whatever launcher is configured (joblib, basic, submitit), so
the jobs are ordinary rlrun runs with their own folders, TensorBoard events and results.json.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any, Callable, List, Sequence

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from rlrun.errors import ConfigError
from rlrun.sweeps import layout
from rlrun.sweeps import optuna_study as studies
from rlrun.sweeps.job import NOT_STARTED

log = logging.getLogger(__name__)

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
RESULTS_FILE = "optuna_results.yaml"

Launch = Callable[[Sequence[Sequence[str]], int], Sequence[JobReturn]]  # (job overrides, first job index)
Compose = Callable[[List[str]], DictConfig]  # a job's overrides -> its config, as the launcher will compose it


def run_study(settings: DictConfig, arguments: List[str], config: DictConfig, parser: OverridesParser,
              launch: Launch, validate: Callable[[Sequence[Sequence[str]]], None],
              compose: Compose) -> List[Sequence[JobReturn]]:
    """Run trials until the study holds ``n_trials`` finished ones; return every batch's job returns.

    Trials are made one batch at a time, so what will vary is not known upfront: job folders name the search
    space's keys (``0_agent.batch_size=32,agent.lr=0.0012``), and the plain overrides are said once in sweep.yaml.
    """
    studies.check_settings(settings)
    space, fixed = studies.parse_search_space(dict(settings.params), arguments, parser)
    if not space:
        raise ConfigError("hydra/sweeper=optuna needs at least one search dimension, e.g. "
                          "'agent.lr=tag(log, interval(1e-4, 1e-2))' or hydra.sweeper.params.")
    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    varying, excluded = list(space), layout.excluded_keys(config)
    layout.plan_sweep(sweep_dir, varying, fixed, configs_to_inspect(space, fixed), compose)
    url = studies.storage_url(settings, sweep_dir)
    study = optuna.create_study(
        study_name=settings.study_name, storage=studies.open_storage(url), sampler=studies.build_sampler(settings),
        pruner=studies.build_pruner(settings), direction=settings.direction, load_if_exists=True)
    log.info("Optuna study %r in %s: %s sampler, %s pruner, %s %s; %d of %d trials already finished",
             settings.study_name, studies.masked(url), settings.sampler, settings.pruner, settings.direction,
             settings.metric, finished_trials(study), settings.n_trials)

    returns: List[Sequence[JobReturn]] = []
    job_index = 0
    while (missing := settings.n_trials - finished_trials(study)) > 0:
        trials = [study.ask(space) for _ in range(min(settings.n_jobs, missing))]
        # The trial's number tells the job which trial of the study to report its eval returns to.
        batch = [layout.folder_naming(fixed + [studies.override_for(key, trial.params[key]) for key in space]
                                      + [f"++hydra.job.env_set.{studies.TRIAL_NUMBER_VARIABLE}={trial.number}"],
                                      varying, excluded) for trial in trials]
        try:
            validate(batch)
        except Exception:
            for trial in trials:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        results = launch(batch, job_index)
        started = [(trial, result) for trial, result in zip(trials, results) if not never_started(result)]
        for trial, result in started:
            tell(study, trial, result, settings)
        job_index += len(batch)
        returns.append(results)
        if len(started) < len(trials):  # a signal stopped the sweep: its unstarted trials stay RUNNING, uncounted
            break
    write_results(study, sweep_dir, url, settings)
    return returns


def configs_to_inspect(space: dict[str, optuna.distributions.BaseDistribution], fixed: List[str],
                       limit: int = 16) -> List[List[str]]:
    """Jobs whose configs cover the key sets a trial can have (for the HParams columns): one per combination of
    the categorical dimensions with names as choices (config groups: agent=dqn,reinforce), the others at defaults."""
    named = [[studies.override_for(key, choice) for choice in distribution.choices]
             for key, distribution in space.items()
             if isinstance(distribution, optuna.distributions.CategoricalDistribution)
             and all(isinstance(choice, str) for choice in distribution.choices)]
    return [fixed + list(choices) for choices in itertools.islice(itertools.product(*named), limit)]


def never_started(job: JobReturn) -> bool:
    """A job that a stopped sweep did not start (rlrun/sweeps/joblib_jobs.py), unlike a failed one."""
    outcome = job._return_value if job.status == JobStatus.COMPLETED else None
    return isinstance(outcome, dict) and outcome.get("type") == NOT_STARTED


def tell(study: optuna.Study, trial: optuna.trial.Trial, job: JobReturn, settings: DictConfig) -> None:
    """Record one finished job in the study: its objective, or pruned, or failed."""
    outcome = job._return_value if job.status == JobStatus.COMPLETED else None
    if not isinstance(outcome, dict) or outcome.get("failed") or "eval_history" not in outcome:
        error = outcome.get("error") if isinstance(outcome, dict) else job._return_value
        log.warning("trial %d failed: %s", trial.number, error)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    if job.hydra_cfg is not None:
        trial.set_user_attr("job_dir", str(job.hydra_cfg.hydra.runtime.output_dir))
    report_missing_evaluations(study, trial, outcome["eval_history"])
    if outcome.get("pruned_at_step") is not None:
        log.info("trial %d pruned at step %d", trial.number, outcome["pruned_at_step"])
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    value = studies.objective(outcome, settings.metric, settings.last_evals)
    log.info("trial %d: %s = %.3f", trial.number, settings.metric, value)
    study.tell(trial, value)


def write_results(study: optuna.Study, sweep_dir: Path, url: str, settings: DictConfig) -> None:
    """optuna_results.yaml in the sweep dir: trial counts, and the best trial so far of the whole study."""
    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,))) for state in FINISHED}
    summary: dict[str, Any] = {"study_name": study.study_name, "storage": studies.masked(url),
                               "metric": settings.metric, "direction": settings.direction, "trials": counts}
    if counts["complete"]:
        best = study.best_trial
        summary.update(best_value=best.value, best_params=best.params, best_trial=best.number)
        log.info("best trial %d: %s = %.3f with %s", best.number, settings.metric, best.value, best.params)
    OmegaConf.save(OmegaConf.create(summary), sweep_dir / RESULTS_FILE)


def finished_trials(study: optuna.Study) -> int:
    """Trials that count towards n_trials; trials left RUNNING by a killed process do not."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def report_missing_evaluations(study: optuna.Study, trial: optuna.trial.Trial, history: list) -> None:
    """Give the study every eval return of the run (the job reports live only when it could reach the storage).

    The median pruner compares later trials with these, so a completed trial needs them too.
    """
    reported = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number).intermediate_values
    for step, mean_return in history:
        if int(step) not in reported:
            trial.report(float(mean_return), int(step))
