"""TensorBoard logging for one run: scalars against env steps, and the run's hparams at the end."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import imageio.v3 as iio
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter

from rlrun.config import target_update_interval

# The same keys for every run, so TensorBoard's HParams tab lines up runs of different agents.
# Keys an agent lacks get NaN (numbers) or "-" (names).
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
    # tabular Q-learning
    "alpha": ("agent.alpha", math.nan),
    "alpha_decay": ("agent.alpha_decay", math.nan),
    "initial_q": ("agent.initial_q", math.nan),
}


def flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The fixed hparam key set, read from a run's config."""
    values = {}
    for key, (path, missing) in HPARAM_KEYS.items():
        value = OmegaConf.select(cfg, path, default=None)
        if value is None:
            value = missing
        elif not isinstance(value, (int, float, str, bool)):
            value = str(list(value))  # lists, e.g. hidden_sizes
        elif isinstance(value, bool):
            value = str(value)  # one type per key: "-" for agents without the switch
        values[key] = value
    if OmegaConf.select(cfg, "agent.algo", default=None) == "dqn":
        values["target_update_every"] = target_update_interval(cfg.agent)  # null stands for a default: log it
    return values


class RunLogger:
    """One SummaryWriter in the run directory; ``tensorboard --logdir outputs`` finds every run."""

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge_step)

    def scalars(self, metrics: Mapping[str, Any], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, float(value), step)

    def video(self, tag: str, frames: list[np.ndarray], fps: int, step: int, downscale: int = 2) -> None:
        """An animated GIF in TensorBoard's Images tab: the summary ``SummaryWriter.add_video`` writes.

        ``add_video`` itself encodes with moviepy (which would downgrade pillow) and logs nothing without
        it, so the GIF is encoded here with imageio's pillow plugin. Frames are shrunk by ``downscale`` to
        keep event files small; the full-size MP4 is in ``videos/``.
        """
        clip = np.stack([frame[::downscale, ::downscale] for frame in frames])
        gif = iio.imwrite("<bytes>", clip, extension=".gif", duration=1000 / fps, loop=0)
        _, height, width, channels = clip.shape
        image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=gif)
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def hparams(self, cfg: DictConfig, results: Mapping[str, float]) -> None:
        """Write the run's hparams and final metrics into this same run (``run_name='.'``)."""
        metrics = {f"hparam/{key}": float(value) for key, value in results.items()}
        self.writer.add_hparams(flat_hparams(cfg), metrics, run_name=".")

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
