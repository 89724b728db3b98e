"""The settings of ``hydra/sweeper=optuna`` (documented in README.md, "Sweeps", and docs/statistics.md)."""

from dataclasses import dataclass, field
from typing import Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class RlrunOptunaSweeperConf:
    _target_: str = "hydra_plugins.rlrun_optuna_sweeper.optuna_sweeper.RlrunOptunaSweeper"
    n_trials: int = 20  # finished trials the study should hold; a resumed study runs only the missing ones
    # trials launched at once (one launcher batch); default: as many as the joblib launcher runs in parallel
    n_jobs: int = "${rlrun.parallel_jobs:${device.threads}}"  # type: ignore[assignment]
    sampler: str = "tpe"  # tpe | random | cmaes
    seed: Optional[int] = None  # sampler seed
    direction: str = "maximize"  # maximize | minimize
    metric: str = "last_evals_mean"  # last_evals_mean | best_eval_return | final_eval_return
    last_evals: int = 3  # evaluations averaged by last_evals_mean
    seeds_per_trial: int = 1  # runs per trial, seeds trial_number * K + 0..K-1 (plus a fixed seed=S override)
    aggregate: str = "iqm"  # iqm | mean | min: a trial's objective (and pruning value) over its K runs' metric
    pruner: str = "median"  # median | none
    pruner_startup_trials: int = 4  # trials finished before the median pruner stops any
    pruner_warmup_steps: int = 0  # env steps of a trial before it may be pruned
    storage: Optional[str] = None  # sqlite:///study.db, any SQLAlchemy URL, or a journal file path; null: in sweep dir
    study_name: str = "rlrun"  # several processes with the same storage and study_name share one study
    params: Dict[str, str] = field(default_factory=dict)  # search space, same syntax as command-line overrides


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna", node=RlrunOptunaSweeperConf, provider="rlrun_optuna_sweeper"
)
