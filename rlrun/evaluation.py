"""Greedy evaluation: during training (periodic) and as its own mode (``mode=evaluate``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig, OmegaConf

from rlrun.agents import Agent, agent_learns, build_agent, non_learning_families
from rlrun.checkpoints import check_spaces, load_checkpoint, space_signature
from rlrun.config import merge_saved_config, validate
from rlrun.envs import make_env
from rlrun.errors import ConfigError
from rlrun.runtime import seed_everything, select_device

log = logging.getLogger(__name__)

# Evaluation episodes use their own seeds, far from the training envs' (seed .. seed + num_envs - 1),
# and the same seeds at every evaluation, so successive evaluations compare policies, not luck.
EVAL_SEED_OFFSET = 1_000_000


def eval_seeds(seed: int, episodes: int) -> list[int]:
    return [seed + EVAL_SEED_OFFSET + i for i in range(episodes)]


def run_greedy_episodes(agent: Agent, env: gym.Env, seeds: list[int]) -> dict[str, list]:
    """One greedy episode per seed; returns per-episode returns and lengths."""
    returns, lengths = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, length, done = 0.0, 0, False
        while not done:
            action = agent.act_greedy(np.asarray(obs)[None])[0]  # asarray: Discrete envs give plain ints
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    return {"returns": returns, "lengths": lengths}


def summarize(returns: list[float]) -> dict[str, float]:
    values = np.asarray(returns, dtype=np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "median": float(np.median(values)),
    }


def evaluate(cfg: DictConfig, run_dir: Path, cli_override_keys: list[str]) -> dict[str, Any]:
    """``mode=evaluate``: rebuild env and agent from the checkpoint's config, play greedy episodes.

    The checkpoint's saved config is the base; keys given on the command line (``eval.episodes=500``,
    ``seed=3``, ``device=cpu``) override it. Writes ``eval.json`` in this run's directory.
    """
    if cfg.checkpoint is None:
        if agent_learns(cfg.agent.algo):
            raise ConfigError(
                f"mode=evaluate needs checkpoint=PATH for agent={cfg.agent.name} (a learning agent has nothing to "
                f"evaluate until trained), e.g. checkpoint=outputs/<date>/<time>/checkpoints/best.pt. "
                f"Only agents that do not learn ({', '.join(non_learning_families())}) can be evaluated without one."
            )
        run_cfg, state = cfg, None
    else:
        payload = load_checkpoint(cfg.checkpoint)
        keys = [key for key in cli_override_keys if key not in ("mode", "checkpoint")]
        run_cfg = merge_saved_config(payload["config"], cfg, keys)
        run_cfg.mode, run_cfg.checkpoint = "evaluate", cfg.checkpoint
        validate(run_cfg)
        state = payload
    device = select_device(run_cfg.device)
    seed_everything(run_cfg.seed)
    env = make_env(run_cfg.env)
    agent = build_agent(run_cfg, env.observation_space, env.action_space, device)
    if state is not None:
        check_spaces(cfg.checkpoint, state["spaces"], space_signature(env.observation_space, env.action_space),
                     run_cfg.env.id)
        agent.load_state_dict(state["agent"])
    seeds = eval_seeds(run_cfg.seed, run_cfg.eval.episodes)
    episodes = run_greedy_episodes(agent, env, seeds)
    env.close()
    report = {
        "checkpoint": cfg.checkpoint,
        "env": run_cfg.env.id,
        "agent": run_cfg.agent.name,
        "episodes": len(seeds),
        "seed": run_cfg.seed,
        "seeds": seeds,
        **summarize(episodes["returns"]),
        **episodes,
        "config": OmegaConf.to_container(run_cfg, resolve=True),
    }
    (Path(run_dir) / "eval.json").write_text(json.dumps(report, indent=2))
    print(
        f"{run_cfg.agent.name} on {run_cfg.env.id}, {len(seeds)} greedy episodes: "
        f"return {report['mean']:.2f} ± {report['std']:.2f} (min {report['min']:.2f}, max {report['max']:.2f})"
        f"\nwrote {Path(run_dir) / 'eval.json'}"
    )
    return report
