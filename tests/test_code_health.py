"""The checks pre-commit runs, in the suite too: the layers (import-linter), the linter (ruff) and the types (mypy).

Each runs the installed tool as a contributor would, from the repository root with pyproject.toml's settings, and
fails with the tool's own report.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LINTED = ["rlrun", "hydra_plugins", "benchmarks", "tests"]


def run_tool(*command: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def report(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_no_module_imports_one_in_a_layer_above_it():
    result = run_tool("lint-imports", "--no-cache")
    assert result.returncode == 0, report(result)
    assert "0 broken" in result.stdout


def test_the_layers_contract_counts_imports_inside_functions(tmp_path):
    """A deferred import is still a dependency: the schema reaching up to the loop from inside a function breaks
    the contract (a copy of the packages, so the checkout is untouched)."""
    for package in ("rlrun", "hydra_plugins"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with open(tmp_path / "rlrun" / "config.py", "a") as config:
        config.write("\n\ndef reaches_up():\n    from rlrun.loop import train\n\n    return train\n")
    result = run_tool("lint-imports", "--no-cache", cwd=tmp_path)
    assert result.returncode != 0, report(result)
    assert "rlrun.config is not allowed to import rlrun.loop" in result.stdout, report(result)


def test_ruff_finds_nothing():
    result = run_tool("ruff", "check", "--no-cache", *LINTED)
    assert result.returncode == 0, report(result)


def test_the_code_is_formatted():
    result = run_tool("ruff", "format", "--check", "--no-cache", *LINTED)
    assert result.returncode == 0, report(result)


def test_mypy_finds_no_type_errors():
    # pyproject.toml names the files (rlrun, hydra_plugins); the cache in .mypy_cache makes later runs take seconds
    result = run_tool("mypy")
    assert result.returncode == 0, report(result)
    assert "Success: no issues found" in result.stdout, report(result)
