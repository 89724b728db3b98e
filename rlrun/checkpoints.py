"""Saving and loading checkpoints: atomic writes, and loads that never run pickled code."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from rlrun.errors import ConfigError

FORMAT_VERSION = 1


def space_signature(obs_space: gym.Space, action_space: gym.Space) -> dict[str, Any]:
    """What an env must match for a checkpoint to load: observation shape, and action count or shape."""
    obs_shape = [int(obs_space.n)] if isinstance(obs_space, gym.spaces.Discrete) else list(obs_space.shape or ())
    if isinstance(action_space, gym.spaces.Discrete):
        return {"obs_shape": obs_shape, "actions": int(action_space.n)}
    return {"obs_shape": obs_shape, "actions": list(action_space.shape or ())}


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, then rename: a crash leaves the old file intact.

    The file is created with mode 0666 less the umask, like any other file the run writes (``mkstemp``'s 0600
    would hide ``best.pt`` from the group on a shared cluster). The folder is fsynced after the rename, so the
    rename itself survives a power cut. On any failure (a full disk: OSError) the temporary file is removed and
    the error raised; the previous checkpoint stays in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format_version": FORMAT_VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def create_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside ``path`` (``.NAME.<random>.tmp``), opened for writing, mode 0666 filtered by the umask."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; Windows cannot open folders and needs nothing here)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        # Some FUSE and network file systems cannot fsync a folder (EINVAL, ENOTSUP); the rename has already
        # happened and the file itself was synced, so the checkpoint is whole: only its durability across a
        # power cut is not guaranteed there.
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with ``weights_only=True``; anything else than an rlrun checkpoint is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"checkpoint={str(path)!r} does not exist or is not a file. Pass the path of a .pt file written by "
            f"rlrun, e.g. checkpoint=outputs/<date>/<time>/checkpoints/best.pt."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for bad files; each becomes one clear message
        message = str(error)
        if "Weights only load failed" in message and ("global" in message.lower() or "GLOBAL" in message):
            raise ConfigError(
                f"checkpoint={str(path)!r} was refused: it holds pickled Python objects that could run code when "
                f"loaded, and rlrun only loads plain tensors and values (torch.load with weights_only=True). "
                f"Use a checkpoint written by rlrun."
            ) from None
        first_line = message.strip().splitlines()[0] if message.strip() else ""
        raise ConfigError(
            f"checkpoint={str(path)!r} could not be read ({type(error).__name__}: {first_line[:200]}). The file is "
            f"truncated, corrupted or not a torch checkpoint; use another one, e.g. checkpoints/last.pt."
        ) from None
    if not isinstance(payload, dict) or "config" not in payload or "agent" not in payload:
        raise ConfigError(f"checkpoint={str(path)!r} is a torch file but not an rlrun checkpoint (no config/agent).")
    online = payload["agent"].get("online") if isinstance(payload["agent"], dict) else None
    if isinstance(online, dict) and "value.weight" in online:
        raise ConfigError(
            f"checkpoint={str(path)!r} has the dueling head of rlrun before Wang et al. (2016)'s architecture: its "
            f"value and advantage layers (value.weight, advantage.weight) share the last hidden layer. The dueling "
            f"head now gives each stream its own hidden layer, so these weights do not fit it and cannot be loaded or "
            f"resumed. Train the run again, or use an rlrun from before the change for this checkpoint."
        )
    return payload


def check_spaces(path: str | Path, saved: dict[str, Any], env_signature: dict[str, Any], env_id: str) -> None:
    if saved != env_signature:
        raise ConfigError(
            f"checkpoint={str(path)!r} was trained on observations {saved['obs_shape']} and actions "
            f"{saved['actions']}, but env.id={env_id} has observations {env_signature['obs_shape']} and actions "
            f"{env_signature['actions']}. Evaluate it on the env it was trained on (drop the env override)."
        )
