"""The training loop, one for every agent: reset, act, step, observe, update, log, evaluate, checkpoint.

It knows nothing of any algorithm: the agent decides when it learns and which metrics it reports.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shlex
import signal
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rlrun.agents import Agent, build_agent
from rlrun.checkpoints import check_spaces, load_checkpoint, save_checkpoint, space_signature
from rlrun.config import RESUMABLE_KEYS, eval_epsilon, eval_step_cap, merge_saved_config, tuned_settings_line, validate
from rlrun.envs import capture_env_state, episode_step_limit, make_eval_env, make_vector_env, restore_env_state
from rlrun.errors import ConfigError, OutputWriteError, TrainingDiverged
from rlrun.evaluation import eval_seeds, run_greedy_episodes, summarize
from rlrun.hparams import SweepLayout
from rlrun.logger import RunLogger
from rlrun.runtime import (
    global_rng_state,
    random_streams,
    seed_everything,
    select_device,
    set_global_rng_state,
    space_seed,
)
from rlrun.video import make_render_env, play_and_capture, write_mp4

log = logging.getLogger(__name__)


def crossed(previous: int, current: int, every: int) -> bool:
    """True when a multiple of ``every`` lies in (previous, current]: steps advance by num_envs at a time."""
    return current // every > previous // every


class EvaluationInterrupted(Exception):
    """Raised by the signal handler inside a greedy episode: evaluations are not waited for."""


def real_next_obs(next_obs: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
    """Next observations with each finished sub-env's true final observation in place of its reset one."""
    if "_final_obs" not in infos or not infos["_final_obs"].any():
        return next_obs
    fixed = next_obs.copy()
    for i in np.flatnonzero(infos["_final_obs"]):
        fixed[i] = infos["final_obs"][i]
    return fixed


def progress_fields(last_return: float, last_eval: dict[str, float] | None, metrics: dict[str, Any]) -> dict[str, str]:
    """The progress bar's postfix: the last episode's return, the agent's exploration and learning rates where
    it has them (no ``eps=nan`` for agents without epsilon), the actor-critic's approx KL and explained variance,
    and the last greedy evaluation."""
    fields = {"ret": f"{last_return:.1f}"}
    for key, label, form in (
        ("train/epsilon", "eps", ".3f"),
        ("train/alpha", "alpha", ".3f"),
        ("train/beta", "beta", ".3f"),
        ("losses/approx_kl", "kl", ".4f"),
        ("losses/explained_variance", "ev", ".2f"),
    ):
        if key in metrics:
            fields[label] = f"{float(metrics[key]):{form}}"
    fields["eval"] = f"{last_eval['mean']:.1f}" if last_eval else "-"
    return fields


class Trainer:
    """Holds one run's env, agent and outputs; ``run()`` trains to ``total_steps``, the early stop or a signal.

    ``last.pt`` carries everything needed to continue exactly (replay buffer, every RNG, the envs'
    episodes in progress); ``best.pt`` only what evaluation needs.
    """

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        resume_from: dict[str, Any] | None = None,
        eval_listener: Callable[[int, float], bool] | None = None,
    ):
        self.cfg = cfg
        # Told (env step, greedy mean return) after each evaluation; True stops training (an Optuna pruner).
        self.eval_listener = eval_listener
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.device = select_device(cfg.device)
        seed_everything(cfg.seed)
        self.envs = make_vector_env(cfg.env)
        self.eval_env = make_eval_env(cfg.env, eval_step_cap(cfg), epsilon=eval_epsilon(cfg))
        self.spaces = space_signature(self.envs.single_observation_space, self.envs.single_action_space)
        self.agent: Agent = build_agent(
            cfg, self.envs.single_observation_space, self.envs.single_action_space, self.device
        )
        self.envs.action_space.seed(space_seed(random_streams(cfg.seed)["action_space"]))
        self.step = 0
        self.episode = 0
        self.best_eval_return = -math.inf
        self.last_eval: dict[str, float] | None = None
        self.last_return = math.nan
        self.eval_history: list[tuple[int, float]] = []  # (env step, greedy mean return)
        # Wall seconds of training (this process and any runs it resumed) at each evaluation, for time-to-threshold.
        self.eval_wall_seconds: list[float] = []
        self.wall_seconds_before = 0.0  # spent by the runs this one resumed
        self.start_time = time.perf_counter()
        # The return that counts as solved: stop_at_return if set, else the env's registered threshold.
        spec_threshold = getattr(self.eval_env.spec, "reward_threshold", None)
        self.solved_at_return = cfg.stop_at_return if cfg.stop_at_return is not None else spec_threshold
        self.solved_at_step: int | None = None
        self.eval_seeds = eval_seeds(cfg.seed, cfg.eval.episodes)
        self.obs: np.ndarray | None = None
        self.resume_from = resume_from
        self.stop_signal: int | None = None
        self.evaluating = False  # a signal during a greedy episode interrupts it (it may never end soon)
        self.video_env: gym.Env | None = None  # made on the first recording (eval.video_every), rendering to arrays
        self.logger: RunLogger | None = None
        self.last_saved_step: int | None = None  # env step of the last.pt on disk, if any

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_payload(self, for_resume: bool) -> dict[str, Any]:
        payload = {
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "agent": self.agent.state_dict(include_replay=for_resume and self.cfg.save_buffer),
            "progress": {"step": self.step, "episode": self.episode, "best_eval_return": self.best_eval_return},
            "spaces": self.spaces,
        }
        if for_resume:
            payload["run_state"] = {
                "obs": torch.as_tensor(self.obs),
                "envs": capture_env_state(self.envs),
                "global_rng": global_rng_state(),
                "eval_history": self.eval_history,
                "eval_wall_seconds": self.eval_wall_seconds,
                "wall_seconds": self.wall_seconds_before + time.perf_counter() - self.start_time,
                "last_eval": self.last_eval,
                "last_return": self.last_return,
                "solved_at_step": self.solved_at_step,
            }
        return payload

    def save(self, name: str, for_resume: bool) -> Path:
        path = self.checkpoint_dir / name
        try:
            save_checkpoint(path, self.checkpoint_payload(for_resume))
        except OSError as error:  # save_checkpoint removed its temporary file; the previous checkpoint is intact
            raise OutputWriteError(path, error, "the checkpoint") from None
        if for_resume:
            self.last_saved_step = self.step
        return path

    def restore(self, payload: dict[str, Any]) -> None:
        """Continue from a ``last.pt`` payload: counters, agent, replay, RNGs and episodes in progress."""
        progress, state = payload["progress"], payload["run_state"]
        self.step, self.episode = progress["step"], progress["episode"]
        self.last_saved_step = self.step
        self.best_eval_return = progress["best_eval_return"]
        self.agent.load_state_dict(payload["agent"])
        self.eval_history = [tuple(item) for item in state["eval_history"]]
        # .get: checkpoints written before time-to-threshold was recorded
        self.eval_wall_seconds = list(state.get("eval_wall_seconds", [math.nan] * len(self.eval_history)))
        self.wall_seconds_before = state.get("wall_seconds", math.nan)
        self.last_eval, self.last_return = state["last_eval"], state["last_return"]
        self.solved_at_step = state["solved_at_step"]
        self.envs.reset(seed=self.cfg.seed)  # builds every sub-env's state, then overwritten below
        if restore_env_state(self.envs, state["envs"]):
            self.obs = state["obs"].numpy()
        else:
            log.warning("this env's episodes cannot be continued mid-way: resuming with fresh episodes")
            self.obs, _ = self.envs.reset()
            self.agent.episodes_restarted()
        set_global_rng_state(state["global_rng"])
        if "replay" not in payload["agent"] and hasattr(self.agent, "buffer"):
            log.warning("last.pt holds no replay buffer (save_buffer=false): the agent refills it from scratch")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, logger: RunLogger) -> dict[str, float]:
        with self.interruptible():
            episodes = run_greedy_episodes(self.agent, self.eval_env, self.eval_seeds)
        stats = {**summarize(episodes["returns"]), "truncated": sum(episodes["truncated"])}
        logger.scalars({"eval/mean_return": stats["mean"], "eval/std_return": stats["std"]}, self.step)
        self.last_eval = stats
        self.eval_history.append((self.step, stats["mean"]))
        self.eval_wall_seconds.append(self.wall_seconds_before + time.perf_counter() - self.start_time)
        if self.solved_at_step is None and self.solved_at_return is not None and stats["mean"] >= self.solved_at_return:
            self.solved_at_step = self.step
        if stats["mean"] > self.best_eval_return:
            self.best_eval_return = stats["mean"]
            self.save("best.pt", for_resume=False)
        log.info(
            "step %d: greedy eval %.2f ± %.2f%s",
            self.step,
            stats["mean"],
            stats["std"],
            f" ({stats['truncated']} of {len(self.eval_seeds)} episodes cut at the "
            f"{episode_step_limit(self.eval_env)}-step limit)"
            if stats["truncated"]
            else "",
        )
        return stats

    def record_video(self, logger: RunLogger) -> Path:
        """Film one greedy episode (the first eval seed) into videos/ and TensorBoard, to watch learning progress."""
        if self.video_env is None:
            self.video_env = make_render_env(self.cfg.env, eval_step_cap(self.cfg), eval_epsilon(self.cfg))
        path = self.run_dir / "videos" / f"step_{self.step:08d}.mp4"
        with self.interruptible():
            episode = play_and_capture(self.agent, self.video_env, self.eval_seeds[0])
        try:
            write_mp4(path, episode.frames, episode.fps)
        except OSError as error:  # a full disk mid-mux, or ffmpeg's pipe broken by it
            raise OutputWriteError(path, error, "the training video") from None
        logger.video("eval/video", episode.frames, episode.fps, self.step)
        log.info("step %d: filmed a greedy episode (return %.2f) to %s", self.step, episode.episode_return, path)
        return path

    def close(self) -> None:
        self.envs.close()
        self.eval_env.close()
        if self.video_env is not None:
            self.video_env.close()

    # ------------------------------------------------------------------ signals
    @contextmanager
    def interruptible(self):
        """Greedy episodes inside this block are cut short by the first SIGINT/SIGTERM."""
        self.evaluating = True
        try:
            yield
        finally:
            self.evaluating = False

    @contextmanager
    def stop_on_signals(self):
        """First SIGINT/SIGTERM: finish the step (or cut the greedy episode short), checkpoint, exit.

        A second one: the default action, at once.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def request_stop(signum, frame):
            self.stop_signal = signum
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.evaluating:
                raise EvaluationInterrupted()

        for sig in previous:
            signal.signal(sig, request_stop)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        """Train to the end; a file that cannot be written (a full disk) stops the run with one paragraph."""
        try:
            return self.train_to_the_end()
        except OutputWriteError as error:
            self.abandon()
            raise error.with_advice(self.how_to_continue()) from None

    def how_to_continue(self) -> str:
        """After a failed write: where training stopped, the checkpoint left in place and the command that resumes."""
        last = self.checkpoint_dir / "last.pt"
        if self.last_saved_step is None or not last.is_file():
            return (
                f"Training stopped at env step {self.step}, before any checkpoint was written: make room (or "
                f"pick another hydra.run.dir), then start the run again."
            )
        smaller = (
            " (add save_buffer=false for smaller checkpoints)"
            if self.cfg.save_buffer and hasattr(self.agent, "buffer")
            else ""
        )
        return (
            f"Training stopped at env step {self.step}; the last good checkpoint, {last} (env step "
            f"{self.last_saved_step}), is left in place. Make room, then continue with: "
            f"{resume_command(self.run_dir)}{smaller}"
        )

    def abandon(self) -> None:
        """Close what is open after a failed write, ignoring further write errors: the run stops anyway."""
        with suppress(OSError, OutputWriteError):
            if self.logger is not None:
                self.logger.close()
        with suppress(Exception):
            self.close()

    def begin(self) -> RunLogger:
        """Restore or reset, and open the run's TensorBoard logger: what comes before the first env step."""
        if self.resume_from is not None:
            self.restore(self.resume_from)
            log.info("resuming %s at env step %d", self.run_dir, self.step)
        else:
            self.obs, _ = self.envs.reset(seed=self.cfg.seed)
        assert self.obs is not None  # from the reset or the checkpoint above
        log.info(tuned_settings_line(self.cfg))
        # purge_step drops events a crashed or stopped run wrote after its checkpoint (all at later steps):
        # the curves continue without a gap or doubled points
        self.logger = RunLogger(self.run_dir, purge_step=self.step + 1 if self.resume_from is not None else None)
        return self.logger

    def record_episodes(self, infos: dict[str, Any], logger: RunLogger) -> None:
        """Log the episodes that ended at this step (``infos`` has ``_episode``)."""
        for i in np.flatnonzero(infos["_episode"]):
            self.last_return = float(infos["episode"]["r"][i])
            logger.scalars(
                {"charts/episodic_return": self.last_return, "charts/episodic_length": int(infos["episode"]["l"][i])},
                self.step,
            )
            self.episode += 1

    def diverged(self, error: Exception, logger: RunLogger) -> TrainingDiverged:
        """The one-paragraph error of a run stopped by a non-finite loss (train.nan_policy=stop)."""
        logger.close()
        last = self.checkpoint_dir / "last.pt"
        where = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
        return TrainingDiverged(
            f"training diverged at env step {self.step}: {error}. Stopped rather than train on garbage; {where}. "
            f"Try a lower agent.lr or agent.max_grad_norm, or train.nan_policy=skip to drop such batches."
        )

    def train_to_the_end(self) -> dict[str, Any]:
        cfg = self.cfg
        logger = self.begin()
        assert self.obs is not None  # from the reset or the checkpoint in begin()
        # Plain locals: OmegaConf lookups cost microseconds each, too much for every step.
        num_envs, total_steps, log_every = cfg.env.num_envs, cfg.total_steps, cfg.log_every
        eval_every, save_every, stop_at_return = cfg.eval.every, cfg.save_every, cfg.stop_at_return
        video_every = cfg.eval.video_every
        metrics: dict[str, Any] = {}
        start_time, start_step = time.perf_counter(), self.step
        self.start_time = start_time
        previous = self.step
        stopped_early = False
        try:
            with (
                self.stop_on_signals(),
                logging_redirect_tqdm(),
                tqdm(total=total_steps, initial=self.step, unit="step", mininterval=0.5, disable=None) as bar,
            ):
                while self.step < total_steps and self.stop_signal is None:
                    obs = self.obs
                    actions = self.agent.act(obs, self.step, self.episode)
                    next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
                    self.agent.observe(obs, actions, rewards, real_next_obs(next_obs, infos), terminated, truncated)
                    self.obs = next_obs
                    previous, self.step = self.step, self.step + num_envs
                    metrics.update(self.agent.update(self.step, self.episode))

                    if "_episode" in infos:
                        self.record_episodes(infos, logger)

                    if crossed(previous, self.step, log_every):
                        steps_per_second = (self.step - start_step) / (time.perf_counter() - start_time)
                        logger.scalars({**metrics, "charts/steps_per_second": steps_per_second}, self.step)
                        bar.update(self.step - bar.n)
                        bar.set_postfix(progress_fields(self.last_return, self.last_eval, metrics), refresh=False)
                    if crossed(previous, self.step, eval_every):
                        stats = self.evaluate(logger)
                        if stop_at_return is not None and stats["mean"] >= stop_at_return:
                            log.info(
                                "greedy eval %.2f reached stop_at_return=%s: stopping", stats["mean"], stop_at_return
                            )
                            stopped_early = True
                            break
                        if self.eval_listener is not None and self.eval_listener(self.step, stats["mean"]):
                            log.info("step %d: stopped by the sweeper (trial pruned)", self.step)
                            stopped_early = True
                            break
                    if video_every and crossed(previous, self.step, video_every):
                        self.record_video(logger)
                    if crossed(previous, self.step, save_every):
                        self.save("last.pt", for_resume=True)
                bar.update(self.step - bar.n)
                if self.stop_signal is None and (
                    self.last_eval is None or not crossed(previous, self.step, eval_every)
                ):
                    self.evaluate(logger)  # the final policy always gets a greedy evaluation
        except EvaluationInterrupted:
            pass  # the training state is whole (evaluation changes none of it): checkpointed below
        except TrainingDiverged as error:
            raise self.diverged(error, logger) from None

        if self.stop_signal is not None:
            return self.stop_for_signal(logger)
        return self.finish(logger, time.perf_counter() - start_time, stopped_early)

    def finish(self, logger: RunLogger, wall: float, stopped_early: bool) -> dict[str, Any]:
        """Save last.pt, log the hparams, close, write results.json: the end of a run that trained to its end."""
        cfg = self.cfg
        self.save("last.pt", for_resume=True)
        assert self.last_eval is not None  # the final policy always gets an evaluation (above)
        results = {"best_eval_return": self.best_eval_return, "final_eval_return": self.last_eval["mean"]}
        sweep = SweepLayout.load(self.run_dir.parent)  # a sweep job (also resumed): the key set of its whole sweep
        logger.hparams(cfg, results, *((sweep.hparams, sweep.swept_hparams) if sweep else ()))
        logger.close()
        self.close()
        log.info(
            "done: %d steps, %d episodes in %.1fs; best greedy eval %.2f, final %.2f%s",
            self.step,
            self.episode,
            wall,
            results["best_eval_return"],
            results["final_eval_return"],
            " (stopped early)" if stopped_early else "",
        )
        summary = {
            **results,
            "final_eval_truncated_episodes": self.last_eval.get("truncated", 0),
            "steps": self.step,
            "episodes": self.episode,
            "wall_seconds": wall,
            "solved_at_return": self.solved_at_return,
            "solved_at_step": self.solved_at_step,
            "eval_history": self.eval_history,
            "eval_wall_seconds": self.eval_wall_seconds,
        }
        # Machine-readable outcome of the run, e.g. for sweep reports (no event-file parsing needed).
        results_file = self.run_dir / "results.json"
        try:
            results_file.write_text(json.dumps(summary, indent=2))
        except OSError as error:
            raise OutputWriteError(results_file, error) from None
        return summary

    def stop_for_signal(self, logger: RunLogger) -> dict[str, Any]:
        path = self.save("last.pt", for_resume=True)
        logger.close()
        self.close()
        assert self.stop_signal is not None  # called once a signal has stopped training
        name = signal.Signals(self.stop_signal).name
        log.warning(
            "%s at env step %d: saved %s. Continue with: %s", name, self.step, path, resume_command(self.run_dir)
        )
        return {"interrupted_by": self.stop_signal, "steps": self.step}


def resume_command(run_dir: Path) -> str:
    """``rlrun resume=DIR``, quoted for the shell and Hydra when DIR has characters Hydra's override grammar splits
    on, as sweep job folders do (``3_agent=dqn,seed=1``)."""
    if re.search(r"[\s=,'\"\[\](){}$\\]", str(run_dir)):
        quoted = f'resume="{run_dir}"'  # Hydra's quoted value, then quoted again for the shell
        return f"rlrun {shlex.quote(quoted)}"
    return f"rlrun resume={run_dir}"


def train(cfg: DictConfig, run_dir: Path, eval_listener: Callable[[int, float], bool] | None = None) -> dict[str, Any]:
    return Trainer(cfg, run_dir, eval_listener=eval_listener).run()


def resume(cfg: DictConfig, cli_override_keys: list[str]) -> dict[str, Any]:
    """``resume=RUN_DIR``: continue that run in its own folder with its saved config.

    Only keys that do not change what is learned may be overridden (``RESUMABLE_KEYS``).
    """
    return resumed_trainer(cfg, cli_override_keys).run()


def resumed_trainer(cfg: DictConfig, cli_override_keys: list[str]) -> Trainer:
    """The Trainer of ``resume=RUN_DIR`` with its saved config and ``last.pt``, checked, before it runs."""
    run_dir = Path(cfg.resume)
    checkpoint = run_dir / "checkpoints" / "last.pt"
    if not run_dir.is_dir() or not checkpoint.is_file():
        raise ConfigError(
            f"resume={cfg.resume!r} is not an rlrun run folder with a checkpoint: {checkpoint} does not exist. "
            f"Pass a run directory such as outputs/<date>/<time> that holds checkpoints/last.pt."
        )
    refused = [key for key in cli_override_keys if key.split(".")[0] not in RESUMABLE_KEYS]
    if refused:
        raise ConfigError(
            f"resume={cfg.resume} cannot change {', '.join(refused)}: a resumed run keeps its env, agent and "
            f"architecture. Only these may change: total_steps, eval.*, save_every, save_buffer, log_every, "
            f"device and device.threads. Start a new run to change anything else."
        )
    payload = load_checkpoint(checkpoint)
    if "run_state" not in payload:
        raise ConfigError(
            f"{checkpoint} was written without run state (an older or evaluation-only checkpoint) "
            f"and cannot be resumed; evaluate it with mode=evaluate checkpoint={checkpoint}."
        )
    saved_buffer = payload["config"].get("buffer") or {}
    if saved_buffer.get("name") == "prioritized" and saved_buffer.get("beta_steps") is None:
        # PER's beta keeps annealing over the total_steps the run started with, whatever total_steps is now
        saved_buffer["beta_steps"] = payload["config"]["total_steps"]
    saved_agent = payload["config"].get("agent") or {}
    annealed = saved_agent.get("lr_end") is not None or saved_agent.get("clip_range_end") is not None
    if annealed and saved_agent.get("lr_decay_steps") is None:
        # likewise the learning rate (and PPO's clip range) keeps annealing over the run's original total_steps
        saved_agent["lr_decay_steps"] = payload["config"]["total_steps"]
    merged = merge_saved_config(payload["config"], cfg, cli_override_keys)
    merged.resume = None
    validate(merged, resumed=True)
    frozen = [key for key in ("lr_end", "clip_range_end") if saved_agent.get(key) == 0]
    if frozen and merged.total_steps > max(saved_agent["lr_decay_steps"], payload["config"]["total_steps"]):
        # past the anneal the rate (or clip range) stays at its end value, 0: the updates would change nothing
        raise ConfigError(
            f"resume={cfg.resume} total_steps={merged.total_steps} would train past the end of this run's anneal "
            f"(agent.{' and agent.'.join(frozen)}=0 at env step {saved_agent['lr_decay_steps']}), where every "
            f"update has a learning rate or clip range of 0 and leaves the weights as they are. Resume up to "
            f"total_steps={saved_agent['lr_decay_steps']}, or start a new run with a longer total_steps."
        )
    trainer = Trainer(merged, run_dir, resume_from=payload)
    check_spaces(checkpoint, payload["spaces"], trainer.spaces, merged.env.id)
    return trainer
