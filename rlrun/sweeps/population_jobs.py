"""``hydra/launcher=population``: the sweep's jobs that differ only in ``seed``, trained together in one process.

The launcher (hydra_plugins/rlrun_population_launcher/) runs on rlrun's joblib launcher (rlrun/sweeps/joblib_jobs.py):
the same worker processes, signal passing, timeouts and records of killed jobs. Only the tasks differ:
:func:`plan_populations` groups the jobs whose overrides are equal but for the seed into populations of up to
``hydra.launcher.members``; every other job (no seed-only sibling, a family without a member axis, a mode that does
not train) is an ordinary task, with one log line saying why.

A population's worker (:func:`execute_population`) sets each member up exactly as Hydra sets up a job (``run_job``:
its folder, ``.hydra/``, its ``rlrun.log``), then trains the members together (rlrun/population.py) and returns
one JobReturn per member, each holding what an ordinary job would return (rlrun/sweeps/job.py). A continued sweep
(``rlrun resume=SWEEP_DIR``) skips finished members and resumes the others from their ``last.pt``; members that
resume from different env steps train as separate populations, one after another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from omegaconf import DictConfig, open_dict

from rlrun.config import MEMBER_AGENT_KEYS
from rlrun.errors import ConfigError
from rlrun.sweeps.job import run_sweep_job
from rlrun.sweeps.joblib_jobs import Job, Task
from rlrun.sweeps.layout import SEED_KEYS, override_key
from rlrun.sweeps.resume import FINISHED, FROM_CHECKPOINT, continue_job, finished_results

log = logging.getLogger(__name__)


# What members of one population may differ in: the seed, and the agent keys of rlrun.config.MEMBER_AGENT_KEYS.
MEMBER_KEYS = (*SEED_KEYS, *(f"agent.{key}" for key in MEMBER_AGENT_KEYS))


def population_key(overrides: Sequence[str]) -> tuple[str, ...]:
    """The job's overrides but those members may differ in: jobs with equal keys train as one population."""
    return tuple(item for item in overrides if override_key(item) not in MEMBER_KEYS)


def unsupported_reason(cfg: DictConfig) -> Optional[str]:
    """Why jobs of this (composed) config cannot train as a population, or None when they can."""
    if cfg.get("mode") != "train" or cfg.get("resume") is not None:
        return f"mode={cfg.get('mode')} jobs do not train" if cfg.get("mode") != "train" else "it resumes a run"
    if cfg.agent.algo != "dqn":
        return f"agent={cfg.agent.name} (the {cfg.agent.algo} family) has no member axis; only the DQN family has"
    if cfg.agent.network == "cnn" or (cfg.agent.network == "auto" and cfg.env.get("preprocessing") == "atari"):
        return "the CNN Q-network has no member axis (MLP observations only)"
    if cfg.train.nan_policy == "skip":
        return "train.nan_policy=skip drops one member's batch, which the stacked update cannot do"
    return None


def check_members(members: Any) -> Optional[int]:
    if members is None:
        return None
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ConfigError(
            f"hydra.launcher.members={members!r} is not a population size: pass a whole number of at "
            f"least 1 (the most jobs trained together in one process), or null for all of a config's "
            f"seeds."
        )
    return members


def plan_populations(launcher: Any, jobs: list[Job]) -> list[Task]:
    """The sweep's tasks: populations of the jobs that differ only in seed (up to ``members`` each), in the order
    of their first job, and every other job alone."""
    members = check_members(launcher.members)
    groups: dict[tuple[str, ...], list[Job]] = {}
    for job in jobs:
        groups.setdefault(population_key(job.overrides), []).append(job)
    tasks: list[Task] = []
    for group in groups.values():
        if len(group) == 1:
            others = ", ".join(f"agent.{key}" for key in MEMBER_AGENT_KEYS)
            reason = f"no other job of the sweep differs from it only in seed or {others}"
        else:
            try:
                composed = launcher.hydra_context.config_loader.load_sweep_config(
                    launcher.config, list(group[0].overrides)
                )
                reason = unsupported_reason(composed)
            except Exception:  # noqa: BLE001 - its own launch reports the composition error
                reason = "its config does not compose"
        if reason is not None:
            for job in group:
                log.info("%s runs as an ordinary job: %s", job.label, reason)
            tasks += [Task([job]) for job in group]
            continue
        size = members or len(group)
        chunks = [group[start : start + size] for start in range(0, len(group), size)]
        tasks += [Task(chunk, population=len(chunk) > 1) for chunk in chunks]  # a chunk of one: an ordinary job
    return tasks


@dataclass
class Member:
    """One population member as its Hydra job set it up."""

    cfg: DictConfig
    run_dir: Path
    how: Optional[str]  # continue_job's answer in a continued sweep (finished, from checkpoint, start again)
    log_file: Path


def prepare_member(cfg: DictConfig) -> Member:
    """The task function Hydra's ``run_job`` calls for a member: it only notes the member (training comes once
    every member is set up). Inside the job's ``hydra.job.env_set``, where a continued sweep is flagged."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    return Member(cfg, run_dir, continue_job(run_dir), run_dir / f"{hydra_cfg.job.name}.log")


def execute_population(
    jobs: Sequence[tuple[int, Sequence[str]]], hydra_context: Any, config: DictConfig, singleton_state: dict
) -> list[JobReturn]:
    """Set up each member as Hydra sets up a job, train them together, return their JobReturns in order."""
    from rlrun.population import MemberLogFile

    setup_globals()
    Singleton.set_state(singleton_state)
    returns: list[JobReturn] = []
    for number, overrides in jobs:
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{number}"
            sweep_config.hydra.job.num = number
        HydraConfig.instance().set_config(sweep_config)
        returns.append(
            run_job(
                hydra_context=hydra_context,
                config=sweep_config,
                task_function=prepare_member,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        )
    members: list[Member] = [ret.return_value for ret in returns]
    # Hydra's logging now writes to the last member's rlrun.log: each member gets its own file instead
    root = logging.getLogger()
    file_handlers = [handler for handler in root.handlers if isinstance(handler, logging.FileHandler)]
    formatter = file_handlers[0].formatter if file_handlers else None
    for handler in file_handlers:
        root.removeHandler(handler)
        handler.close()
    member_files = [MemberLogFile(str(member.log_file), member.run_dir) for member in members]
    for handler in member_files:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    try:
        values = train_members(members)
    finally:
        for handler in member_files:
            root.removeHandler(handler)
            handler.close()
    for ret, value in zip(returns, values):
        ret.return_value, ret.status = value, JobStatus.COMPLETED
    return returns


def train_members(members: list[Member]) -> list[dict[str, Any]]:
    """Each member's job result (what rlrun.sweeps.job.run_sweep_job returns), training the unfinished ones
    together: members that start at one env step form one population."""
    from rlrun.config import validate
    from rlrun.loop import Trainer, resumed_trainer
    from rlrun.population import member_logging

    values: list[Optional[dict[str, Any]]] = [None] * len(members)
    trainers: dict[int, Trainer] = {}
    for index, member in enumerate(members):
        if member.how == FINISHED:
            log.info("%s finished in an earlier attempt of this sweep: skipped", member.run_dir)
            values[index] = run_sweep_job(partial(skipped, member.run_dir), member.run_dir)
            continue

        def build(_listener: Any, member: Member = member, index: int = index) -> dict[str, Any]:
            validate(member.cfg)
            if member.how == FROM_CHECKPOINT:
                member.cfg.resume = str(member.run_dir)  # as rlrun resume=JOB_DIR would: its saved config
                trainers[index] = resumed_trainer(member.cfg, [])
            else:
                trainers[index] = Trainer(member.cfg, member.run_dir)
            return {}

        with member_logging(member.run_dir):
            failed = run_sweep_job(build, member.run_dir)
        if failed.get("failed"):
            values[index] = failed
    by_step: dict[int, list[int]] = {}
    for index, trainer in trainers.items():
        by_step.setdefault(trainer.resume_from["progress"]["step"] if trainer.resume_from else 0, []).append(index)
    for indices in by_step.values():
        for index, value in zip(indices, train_together([trainers[index] for index in indices])):
            values[index] = value
    return values  # type: ignore[return-value]


def train_together(trainers: list[Any]) -> list[dict[str, Any]]:
    """Train these members as one population (alone, a member is an ordinary run); their job results."""
    from rlrun.population import PopulationTrainer, member_logging

    def alone(trainer: Any) -> dict[str, Any]:
        with member_logging(trainer.run_dir):
            return run_sweep_job(lambda _: trainer.run(), trainer.run_dir)

    if len(trainers) == 1:
        return [alone(trainers[0])]
    try:
        population = PopulationTrainer(trainers)
    except ValueError as reason:  # e.g. image observations under network=auto: no member axis
        log.info("these members train one after another, as ordinary runs: %s", reason)
        return [alone(trainer) for trainer in trainers]
    outcomes = population.run()
    return [run_sweep_job(partial(settled, outcome), trainer.run_dir) for trainer, outcome in zip(trainers, outcomes)]


def skipped(run_dir: Path, _listener: Any) -> dict[str, Any]:
    """A member that finished in an earlier attempt of the sweep: what it wrote then."""
    return finished_results(run_dir)


def settled(outcome: Any, _listener: Any) -> dict[str, Any]:
    """A member's outcome as a job's: its results, or the exception that stopped it raised again."""
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
