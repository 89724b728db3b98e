"""rlrun's sweep-safe joblib launcher for Hydra (``hydra/launcher=joblib``, rlrun's default launcher).

Hydra only instantiates plugins from the ``hydra_plugins`` namespace package; the work is in
rlrun/sweeps/joblib_jobs.py. rlrun/sweeps/plugins.py points the launcher config here.
"""
