"""What a run's row in TensorBoard's HParams tab holds: the config keys per agent family, and their values.

A single run logs every HPARAM_KEYS key, so runs of different agents line up; a sweep's jobs log one key set
chosen for the sweep (sweep_hparam_columns, settled by rlrun.sweeps.layout before the first job starts and saved
as a SweepLayout in the sweep folder, which each job's loop reads back here).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, cast

from omegaconf import DictConfig, OmegaConf

from rlrun.config import target_update_interval

log = logging.getLogger(__name__)

# Every key a run can log, in reading order. A single run logs them all, so TensorBoard's HParams tab lines up runs
# of different agents; keys an agent lacks get NaN (numbers) or "-" (names).
HPARAM_KEYS: dict[str, tuple[str, Any]] = {
    "agent": ("agent.name", "-"),
    "env": ("env.id", "-"),
    "buffer": ("buffer.name", "-"),
    "schedule": ("schedule.name", "-"),
    "seed": ("seed", math.nan),
    "total_steps": ("total_steps", math.nan),
    "num_envs": ("env.num_envs", math.nan),
    "lr": ("agent.lr", math.nan),
    "lr_end": ("agent.lr_end", math.nan),
    "gamma": ("agent.gamma", math.nan),
    "batch_size": ("agent.batch_size", math.nan),
    "train_freq": ("agent.train_freq", math.nan),
    "gradient_steps": ("agent.gradient_steps", math.nan),
    "learning_starts": ("agent.learning_starts", math.nan),
    "target_update": ("agent.target_update", "-"),
    "target_update_every": ("agent.target_update_every", math.nan),
    "double": ("agent.double", "-"),
    "dueling": ("agent.dueling", "-"),
    "hidden_sizes": ("agent.hidden_sizes", "-"),
    "tau": ("agent.tau", math.nan),
    "loss": ("agent.loss", "-"),
    "max_grad_norm": ("agent.max_grad_norm", math.nan),
    "capacity": ("buffer.capacity", math.nan),
    "per_alpha": ("buffer.alpha", math.nan),
    "per_beta_start": ("buffer.beta_start", math.nan),
    "n_step": ("buffer.n_step", math.nan),
    # REINFORCE
    "episodes_per_update": ("agent.episodes_per_update", math.nan),
    "baseline": ("agent.baseline", "-"),
    "normalize_returns": ("agent.normalize_returns", "-"),
    "entropy_coef": ("agent.entropy_coef", math.nan),
    "temperature": ("agent.temperature", math.nan),
    # actor-critic (ppo, a2c)
    "n_steps": ("agent.n_steps", math.nan),
    "n_epochs": ("agent.n_epochs", math.nan),
    "gae_lambda": ("agent.gae_lambda", math.nan),
    "clip_range": ("agent.clip_range", math.nan),
    "clip_range_end": ("agent.clip_range_end", math.nan),
    "clip_range_vf": ("agent.clip_range_vf", math.nan),
    "ent_coef": ("agent.ent_coef", math.nan),
    "vf_coef": ("agent.vf_coef", math.nan),
    "target_kl": ("agent.target_kl", math.nan),
    "normalize_advantage": ("agent.normalize_advantage", "-"),
    "normalize_obs": ("agent.normalize_obs", "-"),
    "normalize_reward": ("agent.normalize_reward", "-"),
    "activation": ("agent.activation", "-"),
    "optimizer": ("agent.optimizer", "-"),
    # tabular Q-learning
    "alpha": ("agent.alpha", math.nan),
    "alpha_decay": ("agent.alpha_decay", math.nan),
    "initial_q": ("agent.initial_q", math.nan),
}


# Config groups beyond ``agent`` that a family reads: buffer and schedule keys matter only to these families.
FAMILY_GROUPS: dict[str, tuple[str, ...]] = {"dqn": ("buffer", "schedule"), "tabular_q": ("schedule",)}
OPTIONAL_GROUPS = ("buffer", "schedule")  # always composed, read by some families only
_ABSENT = object()

# The metrics of the HParams table, in the order its first columns show them.
HPARAM_METRICS = {"best_eval_return": "best eval return", "final_eval_return": "final eval return"}


def relevant_hparams(cfg: DictConfig) -> list[str]:
    """The HPARAM_KEYS that matter for this run's agent family and are set, in HPARAM_KEYS order.

    A key matters when the composed config has it (each family's schema holds only its own keys), and, for
    buffer and schedule keys, when the family uses that group (REINFORCE has a buffer in its config, unused).
    A null there (``lr_end``: no anneal, ``max_grad_norm``: no clipping) says the setting is off: no column for it.
    """
    groups = FAMILY_GROUPS.get(OmegaConf.select(cfg, "agent.algo", default=""), ())
    keys = []
    for key, (path, missing) in HPARAM_KEYS.items():
        group = path.split(".", 1)[0]
        if group in OPTIONAL_GROUPS and group not in groups:
            continue
        value = hparam_value(cfg, key)
        if value is not missing and value == value:  # NaN is not equal to itself
            keys.append(key)
    return keys


def hparam_column(override_key: str) -> str:
    """The HParams column of a swept override key: ``agent`` and ``agent.lr`` are HPARAM_KEYS' ``agent`` and
    ``lr``; a key with no such column (``eval.episodes``) is a column of its own, named by the key."""
    for key, (path, _) in HPARAM_KEYS.items():
        if override_key in (key, path):
            return key
    return override_key


def sweep_hparam_columns(swept_keys: list[str], configs: list[DictConfig]) -> list[str]:
    """One key set for every job of a sweep: the swept keys' columns, then the keys that matter for any
    of the sweep's configs (one per distinct agent family and groups), in HPARAM_KEYS order."""
    columns = list(dict.fromkeys(hparam_column(key) for key in swept_keys))
    relevant = {key for cfg in configs for key in relevant_hparams(cfg)}
    return columns + [key for key in HPARAM_KEYS if key in relevant and key not in columns]


def hparam_value(cfg: DictConfig, key: str) -> Any:
    """One column's value in this run, as TensorBoard takes it: a number, or a string for names, lists and
    switches (one type per column: ``-`` for agents without the switch); NaN or ``-`` where the run lacks it."""
    path, missing = HPARAM_KEYS.get(key, (key, "-"))
    value = OmegaConf.select(cfg, path, default=None)
    if key == "target_update_every" and OmegaConf.select(cfg, "agent.algo", default=None) == "dqn":
        return target_update_interval(cfg.agent)  # null stands for a default: log the interval it means
    if value is None:
        return missing
    if isinstance(value, DictConfig):  # a swept group without a column of its own, e.g. device=cpu,cuda
        return str(value.get("name", value.get("type", OmegaConf.to_yaml(value).strip())))
    if isinstance(value, bool):
        return str(value)
    if not isinstance(value, (int, float, str)):
        return str(list(value))  # lists, e.g. hidden_sizes
    return value


def flat_hparams(cfg: DictConfig, keys: list[str] | None = None) -> dict[str, Any]:
    """The hparam values of a run's config, for ``keys`` (default: every HPARAM_KEYS key)."""
    return {key: hparam_value(cfg, key) for key in (keys if keys is not None else HPARAM_KEYS)}


# ----------------------------------------------------------------------------- a sweep's shared key set
SWEEP_FILE = "sweep.yaml"


@dataclass
class SweepLayout:
    """A sweep's ``sweep.yaml``: written once by its sweeper (rlrun.sweeps.layout.plan_sweep), read by each job.

    It lives here, below the loop, because a job's loop reads it back for its HParams key set; the sweeps above
    decide what goes in it.
    """

    varying: list[str]  # override keys whose value differs between jobs: the job folders name these
    every_job: list[str]  # overrides with one value for every job, left out of the folder names
    hparams: list[str]  # the HParams columns of every job, the swept ones first
    swept_hparams: list[str]  # the columns of the varying keys (TensorBoard shows them first)

    def save(self, sweep_dir: Path) -> None:
        Path(sweep_dir).mkdir(parents=True, exist_ok=True)
        header = "# rlrun's sweep layout: job folders name the varying overrides, every job shares the others\n"
        (Path(sweep_dir) / SWEEP_FILE).write_text(header + OmegaConf.to_yaml(OmegaConf.create(asdict(self))))

    @classmethod
    def load(cls, sweep_dir: Path) -> Optional[SweepLayout]:
        """The layout a sweeper saved in ``sweep_dir``, or None (not a sweep, or one from before sweep.yaml).

        A run asks at its very end, so a file it cannot read is a warning, never a failed run.
        """
        path = Path(sweep_dir) / SWEEP_FILE
        if not path.is_file():
            return None
        try:
            saved = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.load(path)))
            return cls(**{key: [str(item) for item in saved[key] or []] for key in cls.__dataclass_fields__})
        except Exception as error:  # noqa: BLE001 - YAML, type and missing-key errors alike
            log.warning("%s is not a sweep layout (%s): this run logs every hparams key", path, error)
            return None
