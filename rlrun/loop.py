"""The training loop, one for every agent: reset, act, step, observe, update, log, evaluate, checkpoint.

It knows nothing of any algorithm: the agent decides when it learns and which metrics it reports.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rlrun.agents import Agent, build_agent
from rlrun.checkpoints import save_checkpoint, space_signature
from rlrun.envs import make_env, make_vector_env
from rlrun.evaluation import eval_seeds, run_greedy_episodes, summarize
from rlrun.logger import RunLogger
from rlrun.runtime import seed_everything, select_device
from rlrun.video import make_render_env, record_episode

log = logging.getLogger(__name__)


def crossed(previous: int, current: int, every: int) -> bool:
    """True when a multiple of ``every`` lies in (previous, current]: steps advance by num_envs at a time."""
    return current // every > previous // every


def real_next_obs(next_obs: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
    """Next observations with each finished sub-env's true final observation in place of its reset one."""
    if "_final_obs" not in infos or not infos["_final_obs"].any():
        return next_obs
    fixed = next_obs.copy()
    for i in np.flatnonzero(infos["_final_obs"]):
        fixed[i] = infos["final_obs"][i]
    return fixed


class Trainer:
    """Holds one run's env, agent and outputs; ``run()`` trains to ``total_steps`` or the early stop."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.device = select_device(cfg.device)
        seed_everything(cfg.seed)
        self.envs = make_vector_env(cfg.env)
        self.eval_env = make_env(cfg.env)
        self.spaces = space_signature(self.envs.single_observation_space, self.envs.single_action_space)
        self.agent: Agent = build_agent(
            cfg, self.envs.single_observation_space, self.envs.single_action_space, self.device
        )
        self.envs.action_space.seed(cfg.seed)
        self.step = 0
        self.episode = 0
        self.best_eval_return = -math.inf
        self.last_eval: dict[str, float] | None = None
        self.eval_history: list[tuple[int, float]] = []  # (env step, greedy mean return)
        # The return that counts as solved: stop_at_return if set, else the env's registered threshold.
        spec_threshold = getattr(self.eval_env.spec, "reward_threshold", None)
        self.solved_at_return = cfg.stop_at_return if cfg.stop_at_return is not None else spec_threshold
        self.solved_at_step: int | None = None
        self.eval_seeds = eval_seeds(cfg.seed, cfg.eval.episodes)
        self.video_env = None  # made on the first recording (eval.video_every), rendering to arrays

    # ------------------------------------------------------------------ outputs
    def checkpoint_payload(self) -> dict[str, Any]:
        return {
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "agent": self.agent.state_dict(),
            "progress": {"step": self.step, "episode": self.episode, "best_eval_return": self.best_eval_return},
            "spaces": self.spaces,
        }

    def save(self, name: str) -> Path:
        path = self.checkpoint_dir / name
        save_checkpoint(path, self.checkpoint_payload())
        return path

    def evaluate(self, logger: RunLogger) -> dict[str, float]:
        episodes = run_greedy_episodes(self.agent, self.eval_env, self.eval_seeds)
        stats = summarize(episodes["returns"])
        logger.scalars({"eval/mean_return": stats["mean"], "eval/std_return": stats["std"]}, self.step)
        self.last_eval = stats
        self.eval_history.append((self.step, stats["mean"]))
        if self.solved_at_step is None and self.solved_at_return is not None and stats["mean"] >= self.solved_at_return:
            self.solved_at_step = self.step
        if stats["mean"] > self.best_eval_return:
            self.best_eval_return = stats["mean"]
            self.save("best.pt")
        log.info("step %d: greedy eval %.2f ± %.2f", self.step, stats["mean"], stats["std"])
        return stats

    def record_video(self, logger: RunLogger) -> Path:
        """Film one greedy episode (the first eval seed) into videos/ and TensorBoard, to watch learning progress."""
        if self.video_env is None:
            self.video_env = make_render_env(self.cfg.env)
        path = self.run_dir / "videos" / f"step_{self.step:08d}.mp4"
        episode = record_episode(self.agent, self.video_env, self.eval_seeds[0], path)
        logger.video("eval/video", episode.frames, episode.fps, self.step)
        log.info("step %d: filmed a greedy episode (return %.2f) to %s", self.step, episode.episode_return, path)
        return path

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, float]:
        cfg = self.cfg
        logger = RunLogger(self.run_dir)
        # Plain locals: OmegaConf lookups cost microseconds each, too much for every step.
        num_envs, total_steps, log_every = cfg.env.num_envs, cfg.total_steps, cfg.log_every
        eval_every, save_every, stop_at_return = cfg.eval.every, cfg.save_every, cfg.stop_at_return
        video_every = cfg.eval.video_every
        obs, _ = self.envs.reset(seed=cfg.seed)
        metrics: dict[str, Any] = {}
        last_return = math.nan
        start_time = time.perf_counter()
        stopped_early = False
        with logging_redirect_tqdm(), tqdm(total=total_steps, unit="step", mininterval=0.5, disable=None) as bar:
            while self.step < total_steps:
                actions = self.agent.act(obs, self.step, self.episode)
                next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
                self.agent.observe(obs, actions, rewards, real_next_obs(next_obs, infos), terminated, truncated)
                obs = next_obs
                previous, self.step = self.step, self.step + num_envs
                metrics.update(self.agent.update(self.step, self.episode))

                if "_episode" in infos:
                    for i in np.flatnonzero(infos["_episode"]):
                        last_return = float(infos["episode"]["r"][i])
                        logger.scalars({"charts/episodic_return": last_return,
                                        "charts/episodic_length": int(infos["episode"]["l"][i])}, self.step)
                        self.episode += 1

                if crossed(previous, self.step, log_every):
                    steps_per_second = self.step / (time.perf_counter() - start_time)
                    logger.scalars({**metrics, "charts/steps_per_second": steps_per_second}, self.step)
                    bar.update(self.step - bar.n)
                    bar.set_postfix(
                        ret=f"{last_return:.1f}",
                        eps=f"{float(metrics.get('train/epsilon', math.nan)):.3f}",
                        eval=f"{self.last_eval['mean']:.1f}" if self.last_eval else "-",
                        refresh=False,
                    )
                if crossed(previous, self.step, eval_every):
                    stats = self.evaluate(logger)
                    if stop_at_return is not None and stats["mean"] >= stop_at_return:
                        log.info("greedy eval %.2f reached stop_at_return=%s: stopping", stats["mean"],
                                 stop_at_return)
                        stopped_early = True
                        break
                if video_every and crossed(previous, self.step, video_every):
                    self.record_video(logger)
                if crossed(previous, self.step, save_every):
                    self.save("last.pt")
            bar.update(self.step - bar.n)

        if self.last_eval is None or not crossed(previous, self.step, eval_every):
            self.evaluate(logger)  # the final policy always gets a greedy evaluation
        self.save("last.pt")
        results = {"best_eval_return": self.best_eval_return, "final_eval_return": self.last_eval["mean"]}
        logger.hparams(cfg, results)
        logger.close()
        self.envs.close()
        self.eval_env.close()
        if self.video_env is not None:
            self.video_env.close()
        wall = time.perf_counter() - start_time
        log.info(
            "done: %d steps, %d episodes in %.1fs; best greedy eval %.2f, final %.2f%s",
            self.step, self.episode, wall, results["best_eval_return"], results["final_eval_return"],
            " (stopped early)" if stopped_early else "",
        )
        summary = {
            **results,
            "steps": self.step,
            "episodes": self.episode,
            "wall_seconds": wall,
            "solved_at_return": self.solved_at_return,
            "solved_at_step": self.solved_at_step,
            "eval_history": self.eval_history,
        }
        # Machine-readable outcome of the run, e.g. for sweep reports (no event-file parsing needed).
        (self.run_dir / "results.json").write_text(json.dumps(summary, indent=2))
        return summary


def train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    return Trainer(cfg, run_dir).run()
