"""The ``rlrun`` command: Hydra composes the config, then one of the modes (train, evaluate, plot, export) runs.

Thin on purpose: everything it calls can be used without Hydra (tests do).
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path
from typing import Callable, cast

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rlrun.config import override_keys, register_configs, validate
from rlrun.errors import ConfigError, OutputWriteError, RlrunError
from rlrun.sweeps.plugins import register_sweep_plugins


def register_hydra_setup() -> None:
    """Everything Hydra must know before it composes rlrun's config: the schemas and resolvers (rlrun.config), and
    rlrun's sweepers and launchers (hydra_plugins/) with their defaults and resolvers (rlrun.sweeps.plugins).

    The composition root does this, so no module imports one in a layer above it (pyproject.toml's import-linter
    contract). Idempotent; anything else that composes conf/ with Hydra's groups (tests/conftest.py) calls it too.
    """
    register_configs()
    Plugins.instance()  # Hydra's plugin scan first: it re-executes plugin modules, so classes imported before go stale
    import hydra_plugins.rlrun_optuna_sweeper.config  # noqa: F401  (stores hydra/sweeper/optuna)
    from hydra_plugins.rlrun_basic_sweeper.basic_sweeper import RlrunBasicSweeper
    from hydra_plugins.rlrun_joblib_launcher.launcher import RlrunJoblibLauncher
    from hydra_plugins.rlrun_optuna_sweeper.optuna_sweeper import RlrunOptunaSweeper
    from hydra_plugins.rlrun_population_launcher.launcher import RlrunPopulationLauncher
    from hydra_plugins.rlrun_submitit_launcher.launchers import (
        RlrunLocalLauncher,
        RlrunLocalPopulationLauncher,
        RlrunSlurmLauncher,
        RlrunSlurmPopulationLauncher,
    )

    register_sweep_plugins(
        [
            RlrunOptunaSweeper,
            RlrunBasicSweeper,
            RlrunJoblibLauncher,
            RlrunPopulationLauncher,
            RlrunLocalLauncher,
            RlrunSlurmLauncher,
            RlrunLocalPopulationLauncher,
            RlrunSlurmPopulationLauncher,
        ]
    )


register_hydra_setup()
log = logging.getLogger("rlrun")

# The groups a user picks from, in the order a command line usually names them (schema/* and tuned/ are internal).
USER_GROUPS = {
    "env": "the environment (Gymnasium id, sub-envs, episode limit)",
    "agent": "the learning algorithm and its variant switches",
    "buffer": "replay memory of the DQN family",
    "schedule": "epsilon, the exploration rate, over env steps or episodes",
    "device": "where the networks run, and torch threads",
}


def config_groups_help() -> str:
    """``rlrun --help``'s group list, read from conf/ so it always shows the options that exist."""
    import importlib.resources

    from omegaconf import OmegaConf

    conf = importlib.resources.files("rlrun.conf")
    defaults = {}
    # unresolved: the tuned entry interpolates the other groups' choices, unknown outside a composition
    config = OmegaConf.create((conf / "config.yaml").read_text())
    for entry in cast(list, OmegaConf.to_container(config.defaults, resolve=False)):
        if isinstance(entry, dict):
            defaults.update({str(key): str(value) for key, value in entry.items()})
    lines = []
    for group, purpose in USER_GROUPS.items():
        options = sorted(item.name[: -len(".yaml")] for item in (conf / group).iterdir() if item.name.endswith(".yaml"))
        marked = [f"{option}*" if option == defaults.get(group) else option for option in options]
        lines.append(f"  {group:<9} {purpose}\n  {'':<9} {', '.join(marked)}")
    return "\n".join(lines)


if not OmegaConf.has_resolver("rlrun_config_groups"):
    OmegaConf.register_new_resolver("rlrun_config_groups", config_groups_help)


class RunFolderCheck(Callback):
    """Makes the run (or sweep) folder before Hydra does, so one that cannot be made is a paragraph, not a traceback.

    Hydra creates ``hydra.run.dir`` itself, outside anything ``main`` can catch, and reports an OSError there as a
    stack trace. This callback (conf/config.yaml ``hydra.callbacks``) runs first; Hydra's ``${now:}`` is resolved
    once per run, so the folder made here is the one Hydra then uses.
    """

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        make_output_folder(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        make_output_folder(config.hydra.sweep.dir, "hydra.sweep.dir")


def make_output_folder(folder: str, key: str) -> None:
    """Create the run or sweep folder and prove it takes files: an existing read-only folder fails here, in one
    paragraph, not in Hydra's log-file handler with a traceback."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        message = OutputWriteError(
            folder,
            error,
            "the output folder",
            f"Nothing was run. Pass a folder rlrun can create and write, e.g. {key}=/scratch/"
            f"$USER/run, or start rlrun from a writable working directory (the default folder "
            f"is outputs/<date>/<time> under it).",
            verb="create",
        )
        print(f"rlrun: error: {message}", file=sys.stderr)
        raise SystemExit(1) from None  # SystemExit: Hydra turns other exceptions raised by a callback into warnings


def run(
    cfg: DictConfig, run_dir: Path, cli_overrides: list[str], eval_listener: Callable[[int, float], bool] | None = None
) -> dict:
    """Validate, then train, evaluate, plot or export. Shared by the CLI and tests."""
    validate(cfg)
    if cfg.resume is not None:
        from rlrun.loop import resume

        return resume(cfg, [key for key in override_keys(cli_overrides) if key != "resume"])
    if cfg.mode == "evaluate":
        from rlrun.evaluation import evaluate

        return evaluate(cfg, run_dir, override_keys(cli_overrides))
    if cfg.mode == "plot":
        from rlrun.plots import plot

        return plot(cfg)
    if cfg.mode == "export":
        from rlrun.export import export_policy

        return export_policy(cfg, override_keys(cli_overrides))
    from rlrun.loop import train

    return train(cfg, run_dir, eval_listener)


def run_in_sweep(
    cfg: DictConfig, run_dir: Path, cli_overrides: list[str], eval_listener: Callable[[int, float], bool] | None = None
) -> dict:
    """One sweep job; in a continued sweep (``rlrun resume=SWEEP_DIR``), one that goes on from what its folder holds."""
    from rlrun.sweeps.resume import FINISHED, FROM_CHECKPOINT, continue_job, finished_results

    how = continue_job(run_dir)
    if how == FINISHED:
        log.info("%s finished in an earlier attempt of this sweep: skipped", run_dir)
        return finished_results(run_dir)
    if how == FROM_CHECKPOINT:
        cfg.resume = str(run_dir)  # as rlrun resume=JOB_DIR would: its saved config, from its last.pt
        return run(cfg, run_dir, [])
    return run(cfg, run_dir, cli_overrides, eval_listener)


@hydra.main(version_base=None, config_path="conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float | dict | None:
    """A single run returns its best eval return; a multirun job returns its results dict (or failure record)."""
    hydra_cfg = HydraConfig.get()
    # unresolved: an override such as seed=${seed} is a string here, to be refused by validate(), not resolved
    overrides = [str(item) for item in cast(list, OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False))]
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        from rlrun.sweeps.job import run_sweep_job
        from rlrun.sweeps.optuna_study import trial_listener

        return run_sweep_job(
            lambda listener: run_in_sweep(cfg, run_dir, overrides, listener), run_dir, trial_listener()
        )
    try:
        result = run(cfg, run_dir, overrides)
    except RlrunError as error:
        print(f"rlrun: error: {error}", file=sys.stderr)
        sys.exit(2 if isinstance(error, ConfigError) else 1)
    if isinstance(result, dict) and result.get("interrupted_by"):
        sys.exit(128 + result["interrupted_by"])  # 130 for SIGINT, 143 for SIGTERM, as shells expect
    return result.get("best_eval_return") if isinstance(result, dict) else None


def main() -> float | dict | None:
    """The ``rlrun`` command: Hydra's, once ``rlrun resume=SWEEP_DIR`` has become that sweep's own command line."""
    from rlrun.sweeps.resume import sweep_command

    try:
        sys.argv[1:] = sweep_command(sys.argv[1:])
    except RlrunError as error:
        print(f"rlrun: error: {error}", file=sys.stderr)
        sys.exit(2)
    return hydra_main()


if __name__ == "__main__":
    main()
