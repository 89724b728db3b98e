"""The ``rlrun`` command: Hydra composes the config, then one of the modes (train, evaluate, plot) runs.

Thin on purpose: everything it calls can be used without Hydra (tests do).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rlrun.config import override_keys, register_configs, validate
from rlrun.errors import ConfigError

register_configs()
log = logging.getLogger("rlrun")


def run(cfg: DictConfig, run_dir: Path, cli_overrides: list[str]) -> dict:
    """Validate, then train, evaluate or plot. Shared by the CLI and tests."""
    validate(cfg)
    if cfg.mode == "evaluate":
        from rlrun.evaluation import evaluate

        return evaluate(cfg, run_dir, override_keys(cli_overrides))
    if cfg.mode == "plot":
        from rlrun.plots import plot

        return plot(cfg)
    from rlrun.loop import train

    return train(cfg, run_dir)


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    try:
        result = run(cfg, Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task))
    except ConfigError as error:
        print(f"rlrun: error: {error}", file=sys.stderr)
        sys.exit(2)
    return result.get("best_eval_return") if isinstance(result, dict) else None


if __name__ == "__main__":
    main()
