"""rlrun's population launcher for Hydra (``hydra/launcher=population``): a seed sweep's jobs trained together.

Hydra only instantiates plugins from the ``hydra_plugins`` namespace package; the work is in
rlrun/sweeps/population_jobs.py (the grouping) and rlrun/population.py (the training). rlrun/sweeps/plugins.py
registers the launcher and its config.
"""
