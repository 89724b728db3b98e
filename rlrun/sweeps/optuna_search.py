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


def run_study(
    settings: DictConfig,
    arguments: List[str],
    config: DictConfig,
    parser: OverridesParser,
    launch: Launch,
    validate: Callable[[Sequence[Sequence[str]]], None],
    compose: Compose,
) -> List[Sequence[JobReturn]]:
    """Run trials until the study holds ``n_trials`` finished ones; return every batch's job returns.

    Trials are made one batch at a time, so what will vary is not known upfront: job folders name the search
    space's keys (``0_agent.batch_size=32,agent.lr=0.0012``), and the plain overrides are said once in sweep.yaml.
    """
    studies.check_settings(settings)
    space, fixed = studies.parse_search_space(dict(settings.params), arguments, parser)
    if not space:
        raise ConfigError(
            "hydra/sweeper=optuna needs at least one search dimension, e.g. "
            "'agent.lr=tag(log, interval(1e-4, 1e-2))' or hydra.sweeper.params."
        )
    runs = settings.seeds_per_trial
    fixed, first_seed = split_seed(space, fixed, runs)
    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    varying, excluded = list(space) + (["seed"] if runs > 1 else []), layout.excluded_keys(config)
    layout.plan_sweep(sweep_dir, varying, fixed, configs_to_inspect(space, fixed), compose)
    url = studies.storage_url(settings, sweep_dir)
    storage = studies.open_storage(url)
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=storage,
        sampler=studies.build_sampler(settings),
        pruner=studies.build_pruner(settings),
        direction=settings.direction,
        load_if_exists=True,
    )
    log.info(
        "Optuna study %r in %s: %s sampler, %s pruner, %s %s; %d of %d trials already finished",
        settings.study_name,
        studies.masked(url),
        settings.sampler,
        settings.pruner,
        settings.direction,
        settings.metric,
        finished_trials(study),
        settings.n_trials,
    )

    returns: List[Sequence[JobReturn]] = []
    job_index = 0
    while (missing := settings.n_trials - finished_trials(study)) > 0:
        trials = [study.ask(space) for _ in range(min(settings.n_jobs, missing))]
        batch = [
            layout.folder_naming(job, varying, excluded)
            for trial in trials
            for job in trial_jobs(trial, space, fixed, runs, first_seed)
        ]
        try:
            validate(batch)
        except Exception:
            for trial in trials:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        results = launch(batch, job_index)
        by_trial = [results[index * runs : (index + 1) * runs] for index in range(len(trials))]
        started = [(trial, jobs) for trial, jobs in zip(trials, by_trial) if not any(map(never_started, jobs))]
        for trial, jobs in started:
            tell(study, storage, trial, jobs, settings)
        job_index += len(batch)
        returns.append(results)
        if len(started) < len(trials):  # a signal stopped the sweep: its unstarted trials stay RUNNING, uncounted
            break
    write_results(study, sweep_dir, url, settings)
    return returns


def split_seed(space: dict, fixed: List[str], runs: int) -> tuple[List[str], int]:
    """For trials of several runs, the seed is rlrun's to give: a fixed ``seed=S`` becomes the first seed of trial
    0 (and leaves the fixed overrides), a swept seed is an error. One run per trial keeps the seed as given."""
    if runs == 1:
        return fixed, 0
    if "seed" in space:
        raise ConfigError(
            f"hydra.sweeper.seeds_per_trial={runs} gives each trial its own {runs} seeds: seed cannot "
            f"also be a search dimension. Drop the seed sweep, or set seeds_per_trial=1."
        )
    given = [item for item in fixed if layout.override_key(item) == "seed"]
    first_seed = int(given[-1].split("=", 1)[1]) if given else 0
    return [item for item in fixed if item not in given], first_seed


def trial_jobs(trial: optuna.trial.Trial, space: dict, fixed: List[str], runs: int, first_seed: int) -> List[List[str]]:
    """The overrides of a trial's jobs: its params and, per run, the seed and the run's index. The trial's number
    tells each job which trial of the study to report its eval returns to."""
    job = (
        fixed
        + [studies.override_for(key, trial.params[key]) for key in space]
        + [f"++hydra.job.env_set.{studies.TRIAL_NUMBER_VARIABLE}={trial.number}"]
    )
    if runs == 1:
        return [job]
    seeds = studies.trial_seeds(trial.number, runs, first_seed)
    trial.set_user_attr("seeds", seeds)
    return [
        job + [f"seed={seed}", f"++hydra.job.env_set.{studies.TRIAL_RUN_VARIABLE}={run}"]
        for run, seed in enumerate(seeds)
    ]


def configs_to_inspect(
    space: dict[str, optuna.distributions.BaseDistribution], fixed: List[str], limit: int = 16
) -> List[List[str]]:
    """Jobs whose configs cover the key sets a trial can have (for the HParams columns): one per combination of
    the categorical dimensions with names as choices (config groups: agent=dqn,reinforce), the others at defaults."""
    named = [
        [studies.override_for(key, choice) for choice in distribution.choices]
        for key, distribution in space.items()
        if isinstance(distribution, optuna.distributions.CategoricalDistribution)
        and all(isinstance(choice, str) for choice in distribution.choices)
    ]
    return [fixed + list(choices) for choices in itertools.islice(itertools.product(*named), limit)]


def never_started(job: JobReturn) -> bool:
    """A job that a stopped sweep did not start (rlrun/sweeps/joblib_jobs.py), unlike a failed one."""
    outcome = job._return_value if job.status == JobStatus.COMPLETED else None
    return isinstance(outcome, dict) and outcome.get("type") == NOT_STARTED


def tell(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    trial: optuna.trial.Trial,
    jobs: Sequence[JobReturn],
    settings: DictConfig,
) -> None:
    """Record a finished trial (its seeds_per_trial jobs) in the study: the aggregate of their objectives, or
    pruned (when the pruner stopped any of them), or failed (when any failed: a config that crashes on some seeds
    is not one to pick)."""
    outcomes = [job._return_value if job.status == JobStatus.COMPLETED else None for job in jobs]
    for job, outcome in zip(jobs, outcomes):
        if not isinstance(outcome, dict) or outcome.get("failed") or "eval_history" not in outcome:
            error = outcome.get("error") if isinstance(outcome, dict) else job._return_value
            log.warning("trial %d failed: %s", trial.number, error)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
    outcomes = [outcome for outcome in outcomes if isinstance(outcome, dict)]  # all of them, checked above
    folders = [str(job.hydra_cfg.hydra.runtime.output_dir) for job in jobs if job.hydra_cfg is not None]
    if folders:
        trial.set_user_attr("job_dir", folders[0])
        trial.set_user_attr("job_dirs", folders)
    report_evaluations(study, storage, trial, [outcome["eval_history"] for outcome in outcomes], settings.aggregate)
    pruned = [outcome["pruned_at_step"] for outcome in outcomes if outcome.get("pruned_at_step") is not None]
    if pruned:
        log.info("trial %d pruned at step %d", trial.number, min(pruned))
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    values = [studies.objective(outcome, settings.metric, settings.last_evals) for outcome in outcomes]
    trial.set_user_attr("values", values)
    value = studies.aggregate(values, settings.aggregate)
    if len(values) > 1:
        log.info(
            "trial %d: %s = %.3f (%s of %s)",
            trial.number,
            settings.metric,
            value,
            settings.aggregate,
            ", ".join(f"{v:.3f}" for v in values),
        )
    else:
        log.info("trial %d: %s = %.3f", trial.number, settings.metric, value)
    study.tell(trial, value)


def write_results(study: optuna.Study, sweep_dir: Path, url: str, settings: DictConfig) -> None:
    """optuna_results.yaml in the sweep dir: trial counts, and the best trial so far of the whole study."""
    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,))) for state in FINISHED}
    summary: dict[str, Any] = {
        "study_name": study.study_name,
        "storage": studies.masked(url),
        "metric": settings.metric,
        "direction": settings.direction,
        "trials": counts,
        "seeds_per_trial": settings.seeds_per_trial,
        "aggregate": settings.aggregate,
    }
    if counts["complete"]:
        best = study.best_trial
        summary.update(best_value=best.value, best_params=best.params, best_trial=best.number)
        log.info("best trial %d: %s = %.3f with %s", best.number, settings.metric, best.value, best.params)
    # per trial, what it was judged by: its runs' seeds and values (the objective aggregates them)
    summary["per_trial"] = [
        {
            "trial": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": t.params,
            "seeds": t.user_attrs.get("seeds"),
            "values": t.user_attrs.get("values"),
        }
        for t in study.get_trials(deepcopy=False, states=FINISHED)
    ]
    OmegaConf.save(OmegaConf.create(summary), sweep_dir / RESULTS_FILE)


def finished_trials(study: optuna.Study) -> int:
    """Trials that count towards n_trials; trials left RUNNING by a killed process do not."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def report_evaluations(
    study: optuna.Study, storage: optuna.storages.BaseStorage, trial: optuna.trial.Trial, histories: list, how: str
) -> None:
    """Give the study the trial's value at every eval step: the aggregate over its runs of their eval returns.

    Jobs report live only when they can reach the storage, and a run of several reports the aggregate of the runs
    that had reached that step; the median pruner compares later trials with these, so every step is (re)written
    from the complete histories here.
    """
    by_step: dict[int, list[float]] = {}
    for history in histories:
        for step, mean_return in history:
            by_step.setdefault(int(step), []).append(float(mean_return))
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study.study_name), trial.number
    )
    for step, returns in sorted(by_step.items()):
        storage.set_trial_intermediate_value(trial_id, step, studies.aggregate(returns, how))
