"""Exceptions users see: explained in a paragraph by the CLI, never as a traceback."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path


class RlrunError(Exception):
    """Base of the errors the CLI reports as a plain message."""


class ConfigError(RlrunError):
    """Bad user input (config value, env id, checkpoint, run folder)."""


class TrainingDiverged(RlrunError):
    """A non-finite loss: training stops rather than learn from garbage."""


class OutputWriteError(RlrunError):
    """A file or folder of the run could not be written: a full disk, a read-only or missing place.

    ``path`` is what was being written, ``error`` the OSError; ``advice`` says how to go on from here.
    """

    def __init__(self, path, error: OSError, what: str = "", advice: str = "", verb: str = "write"):
        self.path, self.error, self.what, self.verb = path, error, what, verb
        super().__init__(f"{describe_write_failure(path, error, what, verb)}{' ' + advice if advice else ''}")

    def with_advice(self, advice: str) -> OutputWriteError:
        return OutputWriteError(self.path, self.error, self.what, advice, self.verb)


def describe_write_failure(path, error: OSError, what: str = "", verb: str = "write") -> str:
    """``could not <verb> <what> PATH: <reason>; <free space> on the file system that holds it.``"""
    path = Path(path)
    existing = next((folder for folder in (path, *path.parents) if folder.exists()), None)
    try:
        # existing is None only if no folder up to the root exists: disk_usage's TypeError, caught below
        usage = shutil.disk_usage(existing)  # type: ignore[arg-type]
        free = f"{usage.free / 1e9:,.2f} GB free on the file system that holds {existing}"
    except (OSError, TypeError):
        free = "the free space could not be read"
    reason = error.strerror or str(error) or type(error).__name__
    code = f" ({errno.errorcode[error.errno]})" if error.errno is not None and error.errno in errno.errorcode else ""
    label = f"{what} " if what else ""
    blocked = (
        f" {existing} is a file, not a folder;"
        if existing is not None and existing != path and not existing.is_dir()
        else ""
    )
    return f"could not {verb} {label}{path}: {reason}{code};{blocked} {free}."
