"""rlrun's grid sweeper for Hydra (``hydra/sweeper=basic``, the default): Hydra's basic sweeper whose job folders
name only the overrides that vary (rlrun.sweeps.layout). rlrun/sweeps/plugins.py points ``basic`` here.
"""
