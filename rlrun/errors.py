"""Exceptions users see: explained in a paragraph by the CLI, never as a traceback."""


class RlrunError(Exception):
    """Base of the errors the CLI reports as a plain message."""


class ConfigError(RlrunError):
    """Bad user input (config value, env id, checkpoint, run folder)."""


class TrainingDiverged(RlrunError):
    """A non-finite loss: training stops rather than learn from garbage."""
