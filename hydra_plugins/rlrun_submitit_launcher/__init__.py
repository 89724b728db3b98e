"""rlrun's sweep-safe submitit launchers for Hydra (``hydra/launcher=submitit_slurm`` and ``submitit_local``).

Hydra only instantiates plugins from the ``hydra_plugins`` namespace package; the work is in
rlrun/sweeps/submitit_jobs.py. rlrun/sweeps/plugins.py points the two launcher configs here.
"""
