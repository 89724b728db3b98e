"""Recording greedy episodes as MP4 with Gymnasium's ``rgb_array`` rendering; works without a display.

Frames are written with imageio + imageio-ffmpeg (the ffmpeg binary ships in its wheel). Gymnasium's own
``RecordVideo`` wrapper is not used: it needs moviepy, which downgrades pillow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import imageio
import numpy as np
from omegaconf import DictConfig

from rlrun.agents import Agent
from rlrun.envs import make_eval_env

# rgb_array rendering never opens a window, but pygame still probes for a display and complains on a
# headless machine; the dummy driver keeps it quiet and working. A user's own setting wins.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

DEFAULT_FPS = 30  # for envs whose metadata gives no render_fps


@dataclass
class RecordedEpisode:
    frames: list[np.ndarray]  # one (height, width, 3) uint8 frame after reset, then one per step
    episode_return: float
    length: int
    fps: int


def make_render_env(env_cfg: DictConfig, max_episode_steps: int, epsilon: float = 0.0) -> gym.Env:
    """The evaluation env (same dynamics, step cap and ``eval.epsilon``), rendering to arrays.

    Atari renders the emulator's colour screen, not the grayscale 84 x 84 frames the agent sees.
    """
    return make_eval_env(env_cfg, max_episode_steps, render_mode="rgb_array", epsilon=epsilon)


def play_and_capture(agent: Agent, env: gym.Env, seed: int) -> RecordedEpisode:
    """One greedy episode from ``env.reset(seed=seed)``, keeping every rendered frame."""
    obs, _ = env.reset(seed=seed)
    frames = [env.render()]
    total, length, done = 0.0, 0, False
    while not done:
        action = agent.act_greedy(np.asarray(obs)[None])[0]  # asarray: Discrete envs give plain ints
        obs, reward, terminated, truncated, _ = env.step(action)
        frames.append(env.render())
        total += float(reward)
        length += 1
        done = terminated or truncated
    fps = int(env.metadata.get("render_fps") or DEFAULT_FPS)
    return RecordedEpisode(frames, total, length, fps)  # type: ignore[arg-type]  # rgb_array renders: arrays


def write_mp4(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """H.264 MP4 that browsers and players open; frame sizes are padded to even numbers as yuv420p needs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=2, ffmpeg_log_level="error") as writer:
        for frame in frames:
            writer.append_data(frame)  # type: ignore[attr-defined]  # imageio's v2 writer, typed as its base
    return path


def record_episode(agent: Agent, env: gym.Env, seed: int, path: Path) -> RecordedEpisode:
    """Play one greedy episode and save it as ``path`` (MP4)."""
    episode = play_and_capture(agent, env, seed)
    write_mp4(path, episode.frames, episode.fps)
    return episode


def episodes_to_record(requested: list[int] | None, returns: list[float]) -> list[int]:
    """Indices of the episodes to film: the requested ones, or by default the first and the best (once if equal)."""
    if requested is not None:
        return sorted(set(int(i) for i in requested))
    best = int(np.argmax(returns))
    return sorted({0, best})
