"""The Hydra ``Sweeper`` behind ``hydra/sweeper=optuna``: Hydra glue around rlrun.sweeps.optuna_search.

Hydra imports every plugin module on every run, so Optuna itself is imported only when a study runs.
"""

from __future__ import annotations

import sys
from typing import Any, List, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class RlrunOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = OmegaConf.create(settings)
        self.config: Optional[DictConfig] = None
        self.launcher: Optional[Launcher] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: List[str]) -> Any:
        from rlrun.errors import ConfigError, RlrunError
        from rlrun.sweeps.optuna_search import run_study

        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        launcher, loader, config = self.launcher, self.hydra_context.config_loader, self.config
        try:
            return run_study(
                self.settings,
                arguments,
                self.config,
                OverridesParser.create(config_loader=loader),
                launch=lambda batch, first_index: launcher.launch(batch, initial_job_idx=first_index),
                validate=self.validate_batch_is_legal,
                compose=lambda job: loader.load_sweep_config(config, job),
            )
        except RlrunError as error:  # a bad setting or an unreachable storage: one paragraph, as the CLI's errors
            print(f"rlrun: error: {error}", file=sys.stderr)
            sys.exit(2 if isinstance(error, ConfigError) else 1)
