"""rlrun's Optuna sweeper for Hydra (``hydra/sweeper=optuna``), built on current Optuna.

Hydra finds plugins in the ``hydra_plugins`` namespace package; this one ships with rlrun (see pyproject.toml).
"""
