"""Everything a multirun adds on top of single runs: failure capture per job, the sweep report, Optuna studies.

Single runs never import this package's Optuna parts; the Hydra glue lives in ``hydra_plugins/`` and ``conf/hydra/``.
"""
