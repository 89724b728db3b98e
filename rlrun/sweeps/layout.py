"""How a sweep reads in TensorBoard: job folders named by the overrides that vary, one HParams key set.

The sweeper knows the sweep's overrides before the first job starts (Hydra's basic sweeper as rlrun registers it:
every job; rlrun's Optuna sweeper: the search space), so it settles here, once per sweep:

- the override keys that vary between jobs. A job's folder, and so its TensorBoard run name, is its number and
  those overrides (``3_agent=dqn,seed=1``): each job's overrides get Hydra's own
  ``hydra.job.config.override_dirname.exclude_keys`` for the others, so every launcher names folders alike;
- the overrides every job shares, said once in ``sweep.yaml`` in the sweep folder (each job's
  ``.hydra/overrides.yaml`` still holds all of its own);
- the HParams columns every job writes (rlrun.hparams.sweep_hparam_columns), also in ``sweep.yaml``, which a job
  reads back when it logs its hparams.

The file's record, rlrun.hparams.SweepLayout, lives below the loop, which reads it; this module decides its content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from rlrun.hparams import SweepLayout, hparam_column, sweep_hparam_columns

SEED_KEYS = ("seed",)  # never changes which keys a config has: one composition covers every seed


def override_key(override: str) -> str:
    """``agent.lr`` for ``+agent.lr=1e-3``: the key as Hydra's ``exclude_keys`` compares it (``key_or_group``)."""
    return override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]


def varying_keys(jobs: Sequence[Sequence[str]]) -> list[str]:
    """The keys whose value is not the same in every job (absent counts as a value), in command-line order."""
    values: dict[str, set[Optional[str]]] = {}
    for job in jobs:
        for item in job:
            values.setdefault(override_key(item), set())
    for job in jobs:
        given = {override_key(item): item for item in job}
        for key in values:
            values[key].add(given.get(key))
    return [key for key, seen in values.items() if len(seen) > 1]


def shared_overrides(jobs: Sequence[Sequence[str]], varying: Iterable[str]) -> list[str]:
    varying = set(varying)
    return [item for item in (jobs[0] if jobs else []) if override_key(item) not in varying]


def folder_naming(job: Sequence[str], varying: Sequence[str], excluded: Sequence[str] = ()) -> list[str]:
    """The job's overrides plus the Hydra override that leaves the shared keys out of its folder name.

    ``excluded`` are the keys the config already leaves out. A sweep where nothing varies (one job) names every
    override, as Hydra would: a bare job number would say nothing.
    """
    if not varying:
        return list(job)
    keys = dict.fromkeys([*excluded, *(override_key(item) for item in job)])
    names = [key for key in keys if key not in varying and not key.startswith("hydra.")]
    quoted = ",".join("'" + key.replace("\\", "\\\\").replace("'", "\\'") + "'" for key in names)
    return [*job, f"hydra.job.config.override_dirname.exclude_keys=[{quoted}]"]


def configs_to_inspect(jobs: Sequence[Sequence[str]]) -> list[list[str]]:
    """The jobs whose composed configs cover every key set of the sweep: seeds aside, each distinct job once."""
    distinct = {tuple(item for item in job if override_key(item) not in SEED_KEYS): list(job) for job in jobs}
    return list(distinct.values())


def plan_sweep(
    sweep_dir: Path,
    varying: list[str],
    every_job: list[str],
    inspected: Sequence[Sequence[str]],
    compose: Callable[[list[str]], DictConfig],
) -> SweepLayout:
    """Settle the sweep's layout from the configs of ``inspected`` jobs (composed by ``compose``) and save it.

    A job whose config does not compose is left out here: launching it reports the error, as without a layout.
    """
    configs = []
    for job in inspected:
        try:
            configs.append(compose(list(job)))
        except Exception:  # noqa: BLE001 - Hydra's composition errors have no common base class
            continue
    columns = sweep_hparam_columns(varying, configs)
    layout = SweepLayout(varying, every_job, columns, list(dict.fromkeys(hparam_column(key) for key in varying)))
    layout.save(sweep_dir)
    return layout


def excluded_keys(config: DictConfig) -> list[str]:
    """The keys the sweep's own config leaves out of folder names (``hydra.job.config.override_dirname``)."""
    return [
        str(key)
        for key in OmegaConf.select(config, "hydra.job.config.override_dirname.exclude_keys", default=None) or []
    ]
