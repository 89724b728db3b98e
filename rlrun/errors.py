"""The one exception type users see: a bad config value or file, explained in a paragraph."""


class ConfigError(Exception):
    """Bad user input (config value, env id, checkpoint). The CLI prints it without a traceback."""
