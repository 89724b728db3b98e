"""Greedy evaluation: during training (periodic) and as its own mode (``mode=evaluate``).

``mode=evaluate`` also writes a report: ``eval.json``, a histogram of the returns (``returns.png``),
optionally other policies played on the very same episode seeds (``eval.compare``, table in
``compare.md``) and MP4s of chosen episodes (``eval.video``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig, OmegaConf

from rlrun.agents import Agent, agent_learns, build_agent, non_learning_families
from rlrun.checkpoints import check_spaces, load_checkpoint, space_signature
from rlrun.config import agent_presets, compose_agent_preset, eval_epsilon, eval_step_cap, merge_saved_config, validate
from rlrun.envs import episode_step_limit, make_eval_env
from rlrun.errors import ConfigError
from rlrun.runtime import seed_everything, select_device

log = logging.getLogger(__name__)

# Evaluation episodes use their own seeds, far from the training envs' (seed .. seed + num_envs - 1).
# Each training seed owns a block of 2 * EPISODE_SEEDS_PER_SET episode seeds: the first half for the periodic
# evaluations during training (the same seeds at every evaluation, so successive evaluations compare policies,
# not luck), the second half held out for mode=evaluate. Blocks of different training seeds never overlap, so
# runs with seeds s and s+1 play different episodes, and a checkpoint chosen by the periodic evaluations is
# scored by mode=evaluate on episodes that played no part in choosing it.
EVAL_SEED_OFFSET = 1_000_000
EPISODE_SEEDS_PER_SET = 1_000_000
EPISODE_SEED_SETS = ("heldout", "periodic")


def eval_seeds(seed: int, episodes: int, held_out: bool = False) -> list[int]:
    """The env seeds of ``episodes`` evaluation episodes of training seed ``seed``: the periodic set
    (training's evaluations) or the held-out set (``mode=evaluate``'s default)."""
    if episodes > EPISODE_SEEDS_PER_SET:
        raise ConfigError(
            f"eval.episodes={episodes} is not allowed: eval.episodes must be at most "
            f"{EPISODE_SEEDS_PER_SET:,} (each training seed owns that many episode seeds per set)."
        )
    first = EVAL_SEED_OFFSET + 2 * EPISODE_SEEDS_PER_SET * seed + (EPISODE_SEEDS_PER_SET if held_out else 0)
    return list(range(first, first + episodes))


def run_greedy_episodes(agent: Agent, env: gym.Env, seeds: list[int]) -> dict[str, list]:
    """One greedy episode per seed: per-episode returns, lengths, and whether a time limit or the cap cut it.

    ``env`` comes from :func:`rlrun.envs.make_eval_env`, whose step cap guarantees every episode ends.
    """
    returns, lengths, truncations = [], [], []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, length, terminated, truncated = 0.0, 0, False, False
        while not (terminated or truncated):
            action = agent.act_greedy(np.asarray(obs)[None])[0]  # asarray: Discrete envs give plain ints
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            length += 1
        returns.append(total)
        lengths.append(length)
        truncations.append(bool(truncated and not terminated))
    return {"returns": returns, "lengths": lengths, "truncated": truncations}


def summarize(returns: list[float]) -> dict[str, float]:
    values = np.asarray(returns, dtype=np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "median": float(np.median(values)),
    }


def reward_threshold(env: gym.Env) -> float | None:
    """The return at which the env counts as solved (its registered ``reward_threshold``), if it has one."""
    spec = getattr(env, "spec", None)
    return getattr(spec, "reward_threshold", None)


def success_rate(returns: list[float], threshold: float | None) -> float | None:
    """Share of episodes whose return reaches ``threshold``; None when the env defines no threshold."""
    if threshold is None:
        return None
    return float(np.mean(np.asarray(returns) >= threshold))


def policy_report(
    label: str, source: str, episodes: dict[str, list], seeds: list[int], threshold: float | None
) -> dict[str, Any]:
    """One policy's evaluation: what it is, the seeds it played, per-episode numbers and their summary."""
    return {
        "policy": label,
        "source": source,
        "seeds": list(seeds),
        **summarize(episodes["returns"]),
        "success_rate": success_rate(episodes["returns"], threshold),
        **episodes,
    }


# ----------------------------------------------------------------------------- compare
@dataclass
class Rival:
    """A policy to compare with the evaluated one: an agent preset or another checkpoint, ready to act."""

    label: str
    source: str  # "preset" or "checkpoint"
    agent: Agent


def looks_like_checkpoint(entry: str) -> bool:
    return entry.endswith(".pt") or "/" in entry or Path(entry).is_file()


def load_rival(entry: str, run_cfg: DictConfig, env: gym.Env, device) -> Rival:
    """Build one ``eval.compare`` entry for ``env``: a checkpoint path, or an agent preset name (conf/agent)."""
    if looks_like_checkpoint(entry):
        if not Path(entry).is_file():
            raise ConfigError(
                f"eval.compare entry {entry!r} looks like a checkpoint path, but no such file exists. Give agent "
                f"preset names ({', '.join(agent_presets())}) or paths of .pt files written by rlrun."
            )
        payload = load_checkpoint(entry)
        rival_cfg = OmegaConf.create(payload["config"])
        rival_cfg.env, rival_cfg.seed, rival_cfg.device = run_cfg.env, run_cfg.seed, run_cfg.device
        agent = build_agent(rival_cfg, env.observation_space, env.action_space, device)
        env_id = env.spec.id if env.spec is not None else run_cfg.env.id  # gym.make's envs all have a spec
        check_spaces(entry, payload["spaces"], space_signature(env.observation_space, env.action_space), env_id)
        agent.load_state_dict(payload["agent"])
        return Rival(f"{rival_cfg.agent.name} ({entry})", "checkpoint", agent)
    if entry not in agent_presets():
        raise ConfigError(
            f"eval.compare entry {entry!r} is neither an agent preset nor a checkpoint file. Use preset names from "
            f"conf/agent ({', '.join(agent_presets())}) or checkpoint paths, e.g. "
            f"eval.compare=[random,outputs/<date>/<time>/checkpoints/best.pt]."
        )
    rival_cfg = cast(DictConfig, OmegaConf.create(OmegaConf.to_container(run_cfg, resolve=True)))
    rival_cfg.agent = compose_agent_preset(entry)
    validate(rival_cfg)
    agent = build_agent(rival_cfg, env.observation_space, env.action_space, device)
    if agent.learns:  # untrained, it plays its random initialisation; random and heuristic have nothing to learn
        raise ConfigError(
            f"eval.compare entry {entry!r} is a learning agent: untrained, it would only show its random "
            f"initialisation. Compare with its checkpoint instead (eval.compare=[outputs/.../checkpoints/best.pt]); "
            f"presets with nothing to learn (e.g. random) can be named directly."
        )
    return Rival(entry, "preset", agent)


def format_compare_table(reports: list[dict[str, Any]], threshold: float | None, env_id: str) -> str:
    """Markdown: one row per policy, all on the same episode seeds."""
    seeds = reports[0]["seeds"]
    success_header = f"success (return ≥ {threshold:g})" if threshold is not None else "success (no threshold)"
    lines = [
        f"# {env_id}: {len(seeds)} greedy episodes per policy, env seeds {seeds[0]}..{seeds[-1]} for each",
        "",
        f"| policy | mean ± std | median | min | max | {success_header} |",
        "|---|---|---|---|---|---|",
    ]
    for report in reports:
        rate = "n/a" if report["success_rate"] is None else f"{100 * report['success_rate']:.0f}%"
        lines.append(
            f"| {report['policy']} | {report['mean']:.2f} ± {report['std']:.2f} | {report['median']:.2f} | "
            f"{report['min']:.2f} | {report['max']:.2f} | {rate} |"
        )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- videos
def record_videos(
    agent: Agent,
    env_cfg: DictConfig,
    max_episode_steps: int,
    seeds: list[int],
    returns: list[float],
    requested: list[int] | None,
    videos_dir: Path,
    epsilon: float = 0.0,
) -> list[dict[str, Any]]:
    """Replay the chosen episodes (same seeds) with rendering on, one MP4 each.

    Episodes are replayed rather than filmed during the evaluation, because "the best" is only known at
    the end and keeping frames of every episode would not fit in memory. A greedy policy replays exactly.
    """
    from rlrun.video import episodes_to_record, make_render_env, record_episode

    indices = episodes_to_record(requested, returns)
    env = make_render_env(env_cfg, max_episode_steps, epsilon)
    videos = []
    for index in indices:
        path = Path(videos_dir) / f"episode_{index:03d}.mp4"
        episode = record_episode(agent, env, seeds[index], path)
        if episode.episode_return != returns[index]:
            log.warning(
                "episode %d replayed with return %.2f instead of %.2f: the policy is not deterministic",
                index,
                episode.episode_return,
                returns[index],
            )
        videos.append(
            {
                "episode": index,
                "seed": seeds[index],
                "return": episode.episode_return,
                "length": episode.length,
                "frames": len(episode.frames),
                "path": str(path),
            }
        )
    env.close()
    return videos


# What a checkpoint defines and mode=evaluate therefore takes from it, never from the command line
TRAINED_AGENT_KEYS = ("agent", "buffer", "schedule", "tuned", "tuned_settings")


def evaluate(cfg: DictConfig, run_dir: Path, cli_override_keys: list[str]) -> dict[str, Any]:
    """``mode=evaluate``: rebuild env and agent from the checkpoint's config, play greedy episodes.

    The checkpoint's saved config is the base; keys given on the command line (``eval.episodes=500``,
    ``seed=3``, ``device=cpu``) override it. Writes ``eval.json`` and ``returns.png`` in this run's directory.
    What to produce besides (``eval.compare``, ``eval.video``) is read from this command's config, never
    from the checkpoint's.
    """
    start_time = time.perf_counter()
    if cfg.checkpoint is None:
        if agent_learns(cfg.agent.algo):
            raise ConfigError(
                f"mode=evaluate needs checkpoint=PATH for agent={cfg.agent.name} (a learning agent has nothing to "
                f"evaluate until trained), e.g. checkpoint=outputs/<date>/<time>/checkpoints/best.pt. "
                f"Only agents that do not learn ({', '.join(non_learning_families())}) can be evaluated without one."
            )
        run_cfg, state = cfg, None
    else:
        keys = [key for key in cli_override_keys if key not in ("mode", "checkpoint")]
        refused = [key for key in keys if key.split(".")[0] in TRAINED_AGENT_KEYS]
        if refused:
            raise ConfigError(
                f"mode=evaluate with checkpoint=... cannot change {', '.join(refused)}: the agent evaluated is the "
                f"checkpoint's, with the settings, architecture and observation statistics it was trained with "
                f"(a group override such as agent=ppo would replace that node and, for example, drop its "
                f"observation normalisation without a word). Drop {'it' if len(refused) == 1 else 'them'}; "
                f"eval.*, seed, device and env.* keys may change."
            )
        payload = load_checkpoint(cfg.checkpoint)
        run_cfg = merge_saved_config(payload["config"], cfg, keys)
        run_cfg.mode, run_cfg.checkpoint = "evaluate", cfg.checkpoint
        validate(run_cfg)
        state = payload
    device = select_device(run_cfg.device)
    seed_everything(run_cfg.seed)
    env = make_eval_env(run_cfg.env, eval_step_cap(run_cfg), epsilon=eval_epsilon(run_cfg))
    agent = build_agent(run_cfg, env.observation_space, env.action_space, device)
    if state is not None:
        check_spaces(
            cfg.checkpoint, state["spaces"], space_signature(env.observation_space, env.action_space), run_cfg.env.id
        )
        agent.load_state_dict(state["agent"])
    episode_seeds = cfg.eval.episode_seeds  # this command's choice, never the checkpoint's
    seeds = eval_seeds(run_cfg.seed, run_cfg.eval.episodes, held_out=episode_seeds == "heldout")
    rivals = [load_rival(str(entry), run_cfg, env, device) for entry in cfg.eval.compare]  # fail before playing
    episodes = run_greedy_episodes(agent, env, seeds)
    threshold = reward_threshold(env)
    step_limit = episode_step_limit(env)
    rival_reports = [
        policy_report(rival.label, rival.source, run_greedy_episodes(rival.agent, env, seeds), seeds, threshold)
        for rival in rivals
    ]
    env.close()
    report = {
        "checkpoint": cfg.checkpoint,
        "env": run_cfg.env.id,
        "agent": run_cfg.agent.name,
        "episodes": len(seeds),
        "seed": run_cfg.seed,
        "episode_seeds": episode_seeds,
        "seeds": seeds,
        **summarize(episodes["returns"]),
        "reward_threshold": threshold,
        "success_rate": success_rate(episodes["returns"], threshold),
        "episode_step_limit": step_limit,  # the env's own time limit, else eval.max_episode_steps
        "truncated_episodes": sum(episodes["truncated"]),
        **episodes,
        "compare": rival_reports,
        "config": OmegaConf.to_container(run_cfg, resolve=True),
        "wall_seconds": time.perf_counter() - start_time,
    }
    run_dir = Path(run_dir)
    if cfg.eval.video:
        report["videos"] = record_videos(
            agent,
            run_cfg.env,
            eval_step_cap(run_cfg),
            seeds,
            episodes["returns"],
            cfg.eval.video_episodes,
            run_dir / "videos",
            eval_epsilon(run_cfg),
        )
    write_report(report, run_dir)
    return report


def write_report(report: dict[str, Any], run_dir: Path) -> None:
    """``eval.json``, ``returns.png`` (every policy overlaid) and, when comparing, ``compare.md``; echo to stdout."""
    from rlrun.plots import plot_return_histograms

    label = report["agent"] if report["checkpoint"] is None else f"{report['agent']} ({report['checkpoint']})"
    played = {"returns": report["returns"], "lengths": report["lengths"], "truncated": report["truncated"]}
    policies = [
        policy_report(label, "evaluated", played, report["seeds"], report["reward_threshold"]),
        *report["compare"],
    ]
    (run_dir / "eval.json").write_text(json.dumps(report, indent=2))
    histogram = plot_return_histograms(
        {p["policy"]: p["returns"] for p in policies},
        report["reward_threshold"],
        f"{report['env']}: greedy returns over {report['episodes']} episodes",
        run_dir / "returns.png",
    )
    lines = [
        f"{report['agent']} on {report['env']}, {report['episodes']} greedy episodes: "
        f"return {report['mean']:.2f} ± {report['std']:.2f} (min {report['min']:.2f}, max {report['max']:.2f})",
    ]
    if report["truncated_episodes"]:
        lines.append(
            f"{report['truncated_episodes']} of {report['episodes']} episodes were cut at "
            f"{report['episode_step_limit']} steps (truncated)"
        )
    if report["compare"]:
        table = format_compare_table(policies, report["reward_threshold"], report["env"])
        (run_dir / "compare.md").write_text(table)
        lines += ["", table, f"wrote {run_dir / 'compare.md'}"]
    for video in report.get("videos", []):
        lines.append(f"wrote {video['path']} (episode {video['episode']}, return {video['return']:.2f})")
    lines += [f"wrote {histogram}", f"wrote {run_dir / 'eval.json'}"]
    print("\n".join(lines))
