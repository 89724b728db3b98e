"""Training a population: runs of one config that differ only in their seed (and the update's scalars that
rlrun.config.MEMBER_AGENT_KEYS allows), stepped and updated together.

Each member is a whole :class:`rlrun.loop.Trainer` (its env, eval env, DQN agent, logger, checkpoints, results),
built exactly as its solo run would be. The population replaces only the loop's hot part: one batched forward
acts for every member, each member's envs step, and one stacked update (rlrun.agents.dqn_population) learns for
all of them. Logging, evaluation, checkpoints and the end of a run are the members' own Trainer methods, so a
member's folder is an ordinary run folder. A member that diverges, reaches ``stop_at_return`` or fails to write a
file stops alone; the others go on.

Log records written while the population works on one member carry that member (``member_logging``), so each
member's ``rlrun.log`` holds its own lines and the population's shared ones (:class:`MemberLogFile`).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator, cast

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rlrun.agents.dqn import DQNAgent
from rlrun.agents.dqn_population import DQNPopulation
from rlrun.errors import OutputWriteError, TrainingDiverged
from rlrun.logger import RunLogger
from rlrun.loop import EvaluationInterrupted, Trainer, crossed, real_next_obs

log = logging.getLogger(__name__)

current_member: ContextVar[str | None] = ContextVar("current_member", default=None)


@contextmanager
def member_logging(run_dir: Path) -> Iterator[None]:
    """Log records inside this block belong to the member training in ``run_dir`` (its rlrun.log only)."""
    token = current_member.set(str(run_dir))
    try:
        yield
    finally:
        current_member.reset(token)


class MemberLogFile(logging.FileHandler):
    """One member's rlrun.log: the records logged for it and those of the whole population (no member set)."""

    def __init__(self, path: str, run_dir: Path):
        super().__init__(path, mode="a", delay=False)
        self.run_dir = str(run_dir)

    def filter(self, record: logging.LogRecord) -> bool:
        return current_member.get() in (None, self.run_dir) and bool(super().filter(record))


Outcome = Any  # a member's results dict (as Trainer.run returns it) or the exception that stopped it


class PopulationTrainer:
    """Trains the members (Trainers of DQN runs at the same env step) to the end, each stopping on its own."""

    def __init__(self, members: list[Trainer]):
        steps = {member.resume_from["progress"]["step"] if member.resume_from else 0 for member in members}
        if len(steps) > 1:
            raise ValueError(f"a population's members start at one env step, not at {sorted(steps)}")
        self.members = members
        self.agents = [cast(DQNAgent, member.agent) for member in members]  # DQNPopulation checks they are
        self.population = DQNPopulation(self.agents)
        self.stop_signal: int | None = None
        self.outcomes: list[Outcome] = [None] * len(members)
        self.active: list[int] = list(range(len(members)))

    @property
    def evaluating(self) -> bool:
        """Read by the signal handler (Trainer.stop_on_signals): a greedy episode in progress is cut short."""
        return any(member.evaluating for member in self.members)

    def end_member(self, k: int, outcome: Outcome) -> None:
        """Member ``k`` is done (finished, diverged or failed): record how, stop stepping it."""
        self.outcomes[k] = outcome
        self.active.remove(k)
        if isinstance(outcome, BaseException):
            member = self.members[k]
            member.abandon()
            with member_logging(self.members[k].run_dir):
                log.error("this member stopped (%s); the rest of the population goes on", outcome)

    def on_member(self, k: int, work, *args) -> Any:
        """Run one member's own Trainer method with its log records routed to it; a failed write ends it alone."""
        with member_logging(self.members[k].run_dir):
            try:
                return work(*args)
            except OutputWriteError as error:
                self.end_member(k, error.with_advice(self.members[k].how_to_continue()))
                return None

    def logger_of(self, k: int) -> RunLogger:
        """Member ``k``'s TensorBoard logger, opened by its ``begin()``."""
        logger = self.members[k].logger
        assert logger is not None
        return logger

    def drop_diverged(self) -> None:
        """One device sync for all members: those whose loss went non-finite stop, reported as diverged."""
        for k in self.population.nonfinite_members():
            if k in self.active:
                member = self.members[k]
                self.end_member(k, member.diverged(TrainingDiverged("the TD loss is not finite"), self.logger_of(k)))

    def save_last(self, k: int) -> None:
        self.population.sync_member_optimizer(k)
        self.on_member(k, self.members[k].save, "last.pt", True)

    def run(self) -> list[Outcome]:
        members, population = self.members, self.population
        for k, member in enumerate(members):
            self.on_member(k, member.begin)
        population.load_member_optimizers()  # after the members restored their own (a resumed population)
        population.last_update_step = self.agents[0].last_update_step
        cfg = members[0].cfg
        num_envs, total_steps, log_every = cfg.env.num_envs, cfg.total_steps, cfg.log_every
        eval_every, save_every, stop_at_return = cfg.eval.every, cfg.save_every, cfg.stop_at_return
        video_every = cfg.eval.video_every
        step = start_step = members[0].step
        previous = step
        metrics: list[dict[str, Any]] = [{} for _ in members]
        start_time = time.perf_counter()
        log.info(
            "training a population of %d members (seeds %s) in one process",
            len(members),
            ", ".join(str(member.cfg.seed) for member in members),
        )
        try:
            # Trainer's handler only sets stop_signal and reads evaluating, which this class has too
            with (
                Trainer.stop_on_signals(cast(Trainer, self)),
                logging_redirect_tqdm(),
                tqdm(total=total_steps, initial=step, unit="step", mininterval=0.5, disable=None) as bar,
            ):
                while self.active and step < total_steps and self.stop_signal is None:
                    actions = population.act(
                        [cast(np.ndarray, member.obs) for member in members],
                        step,
                        [member.episode for member in members],
                    )
                    previous, step = step, step + num_envs
                    for k in list(self.active):  # a failed write ends a member: the list changes
                        member = members[k]
                        obs = member.obs
                        next_obs, rewards, terminated, truncated, infos = member.envs.step(actions[k])
                        member.agent.observe(
                            obs, actions[k], rewards, real_next_obs(next_obs, infos), terminated, truncated
                        )
                        member.obs, member.step = next_obs, step
                        if "_episode" in infos:
                            self.on_member(k, member.record_episodes, infos, member.logger)
                    for k, member_metrics in enumerate(population.update(step)):
                        metrics[k].update(member_metrics)

                    due = [
                        crossed(previous, step, every) if every else False
                        for every in (log_every, eval_every, video_every, save_every)
                    ]
                    if not any(due):
                        continue
                    self.drop_diverged()  # before anything is logged, evaluated or saved from a diverged member
                    log_due, eval_due, video_due, save_due = due
                    if log_due:
                        steps_per_second = (step - start_step) / (time.perf_counter() - start_time)
                        for k in list(self.active):
                            self.on_member(
                                k,
                                self.logger_of(k).scalars,
                                {**metrics[k], "charts/steps_per_second": steps_per_second},
                                step,
                            )
                        bar.update(step - bar.n)
                    if eval_due:
                        for k in list(self.active):
                            stats = self.on_member(k, members[k].evaluate, members[k].logger)
                            if stats is not None and stop_at_return is not None and stats["mean"] >= stop_at_return:
                                with member_logging(self.members[k].run_dir):
                                    log.info(
                                        "greedy eval %.2f reached stop_at_return=%s: this member stops",
                                        stats["mean"],
                                        stop_at_return,
                                    )
                                self.finish_member(k, time.perf_counter() - start_time, stopped_early=True)
                    if video_due:
                        for k in list(self.active):
                            self.on_member(k, members[k].record_video, members[k].logger)
                    if save_due:
                        for k in list(self.active):
                            self.save_last(k)
                bar.update(step - bar.n)
                if self.stop_signal is None:
                    self.drop_diverged()
                    for k in list(self.active):
                        member = members[k]
                        if member.last_eval is None or not crossed(previous, step, eval_every):
                            self.on_member(k, member.evaluate, member.logger)  # the final policy's evaluation
        except EvaluationInterrupted:
            pass  # the training state is whole: checkpointed below
        wall = time.perf_counter() - start_time
        for k in list(self.active):
            if self.stop_signal is not None:
                self.population.sync_member_optimizer(k)
                members[k].stop_signal = self.stop_signal
                interrupted = self.on_member(k, members[k].stop_for_signal, members[k].logger)
                if k in self.active:  # on_member ended it already if a write failed
                    self.end_member(k, interrupted)
            else:
                self.finish_member(k, wall, stopped_early=False)
        return self.outcomes

    def finish_member(self, k: int, wall: float, stopped_early: bool) -> None:
        """Member ``k`` trained to its end: its last.pt, hparams and results.json, as a solo run's end."""
        member = self.members[k]
        self.population.sync_member_optimizer(k)
        results = self.on_member(k, member.finish, member.logger, wall, stopped_early)
        if k in self.active:  # on_member ended it already if a write failed
            self.end_member(k, results)


def train_population(members: list[Trainer]) -> list[Outcome]:
    """Train the members together; one outcome per member: its results dict or the exception that stopped it."""
    return PopulationTrainer(members).run()
