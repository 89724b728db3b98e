"""Every command README.md and the docs pages show, run the way a user runs it.

The commands are read out of README.md and every page under docs/ themselves, so a changed page is tested as it
stands; a command shown on several pages runs once. Each runs with the
installed ``rlrun`` console script (the one beside this Python), in a fresh working directory, with no
``hydra.run.dir`` override; run folders are found where a user finds them, under ``outputs/``. Only a small
budget is put in (``total_steps``, ``eval.*``, ``hydra.sweeper.n_trials``), replacing the value a command already
gives for that key, and placeholders (a run folder, a checkpoint, a sweep folder) are filled with ones made
earlier in the same test. A command that cannot run here is listed in ``SKIPPED`` with the reason; a shown
command that is neither run nor listed fails the suite, and so does a listed command no page shows any more.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
# README first, then the docs pages in a fixed order, so the parametrized test ids are stable
PAGES = [README, *sorted((REPO / "docs").rglob("*.md"))]
BIN = Path(sys.executable).parent
RLRUN = str(BIN / "rlrun")

# Commands that cannot run on the CI machine (no SLURM, no GPU), with the reason. Keys are the command as
# the page shows it (continuation lines joined, comment dropped, runs of spaces collapsed).
SKIPPED = {
    "rlrun -m hydra/launcher=submitit_slurm hydra.launcher.partition=cpu hydra.launcher.mem_gb=2 "
    "agent=dqn,double_dqn seed=0,1": "needs a SLURM cluster: run by make test-cluster (tests/cluster/test_slurm.py)",
    "rlrun -m seed=range(32) hydra/launcher=population_slurm hydra.launcher.partition=cpu "
    "hydra.launcher.members=8": "needs a SLURM cluster: run by make test-cluster (tests/cluster/test_slurm.py)",
    "rlrun -m hydra/sweeper=optuna hydra/launcher=basic hydra.sweeper.n_jobs=1 "
    "hydra.sweeper.storage=postgresql://rlrun@dbhost:5432/rlrun_studies hydra.sweeper.study_name=shared-lr "
    "hydra.sweeper.n_trials=4 'agent.lr=tag(log, interval(1e-4, 1e-2))'": "needs a PostgreSQL server: run by make "
    "test-cluster (tests/cluster/test_optuna_postgres.py)",
}


HAVE_ATARI_EXTRA = all(importlib.util.find_spec(name) is not None for name in ("ale_py", "cv2"))
HAVE_EXPORT_EXTRA = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript", "onnxruntime"))


def skip_reason(command: str) -> str | None:
    """Why ``command`` cannot run on this machine, or None when it runs."""
    if command in SKIPPED:
        return SKIPPED[command]
    if "device=cuda" in command.split() and not torch.cuda.is_available():
        return "needs a CUDA GPU (this machine has none)"
    if {"env=breakout", "env=pong", "env=atari"} & set(command.split()) and not HAVE_ATARI_EXTRA:
        return 'needs the atari extra (pip install "rlrun[atari]"; make test installs it)'
    # In CI (make test installs the extra) such a command is never skipped: without the extra it fails, loudly.
    if (
        {"export.format=onnx", "export.format=both"} & set(command.split())
        and not HAVE_EXPORT_EXTRA
        and not os.environ.get("CI")
    ):
        return 'needs the export extra (pip install "rlrun[export]"; make test installs it)'
    return None


# The budget a training command gets here; a key the command already sets takes this value instead.
TRAIN_BUDGET = {"total_steps": "1200", "eval.every": "600", "eval.episodes": "2", "save_every": "600"}
SWEEP_BUDGET = {
    "total_steps": "400",
    "eval.every": "200",
    "eval.episodes": "2",
    "save_every": "400",
    "hydra.sweeper.n_trials": "2",
}
EVAL_BUDGET = {"eval.episodes": "2"}
# The pages' placeholders, and what fills each (made earlier in the same test).
RUN_PLACEHOLDERS = ("outputs/2026-11-21/10-00-00", "PATH")
SWEEP_PLACEHOLDERS = ("outputs/multirun/2026-11-21/10-00-00", "outputs/multirun/2026-11-21/11-00-00")
FILE_PLACEHOLDERS = {"/shared/studies/lander.journal": "studies/lander.journal"}


def shown_commands(pages: list[Path] = PAGES) -> list[str]:
    """``rlrun``, ``python -m rlrun`` and ``tensorboard`` lines of the pages' bash blocks, one string per distinct
    command (the first page showing it decides its place)."""
    commands = []
    blocks = [block for page in pages for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)]
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] in (["rlrun"], ["tensorboard"]) or words[:3] == ["python", "-m", "rlrun"]:
                command = " ".join(shlex.quote(word) if " " in word else word for word in words)
                if command not in commands:
                    commands.append(command)
    return commands


COMMANDS = shown_commands()


def test_shown_commands_are_all_run_or_skipped_with_a_reason():
    assert len(COMMANDS) >= 20, "the pages' commands were not found: did the code blocks change language?"
    assert len(shown_commands([README])) >= 5, "README's own commands were not found"
    stale = [command for command in SKIPPED if command not in COMMANDS]
    assert not stale, f"SKIPPED lists commands no page shows any more: {stale}"


def test_a_command_on_several_pages_is_run_once():
    on_readme = set(shown_commands([README]))
    on_docs = set(shown_commands(PAGES[1:]))
    assert on_readme & on_docs, "README and the docs share example commands (e.g. plain rlrun)"
    assert len(COMMANDS) == len(set(COMMANDS)) == len(on_readme | on_docs)


def is_sweep(words: list[str]) -> bool:
    return "-m" in words or "--multirun" in words


def with_budget(words: list[str], budget: dict[str, str]) -> list[str]:
    """Give each budget key its small value: replaced where the command sets it, appended otherwise."""
    out, given = [], set()
    for word in words:
        key = word.split("=", 1)[0]
        if "=" in word and key in budget:
            out.append(f"{key}={budget[key]}")
            given.add(key)
        else:
            out.append(word)
    return out + [f"{key}={value}" for key, value in budget.items() if key not in given]


def budget_for(words: list[str]) -> dict[str, str]:
    if any(word.startswith("--") and word not in ("--multirun",) for word in words):
        return {}  # --cfg, --help, --info: nothing runs
    if "mode=plot" in words or "mode=export" in words:
        return {}
    if "mode=evaluate" in words:
        return EVAL_BUDGET
    if any(word.startswith("resume=") for word in words):
        return {"total_steps": "1800", "eval.every": "600", "eval.episodes": "2"}  # a bit beyond the first run
    if is_sweep(words):
        budget = dict(SWEEP_BUDGET)
        if "hydra/sweeper=optuna" not in words:
            budget.pop("hydra.sweeper.n_trials")
        return budget
    return TRAIN_BUDGET


def run(argv: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def run_folders(cwd: Path) -> list[Path]:
    """Single-run folders as a user sees them: outputs/<date>/<time>/, oldest first."""
    return sorted(p for p in (cwd / "outputs").glob("*/*") if p.is_dir() and p.parent.name != "multirun")


def sweep_folders(cwd: Path) -> list[Path]:
    return sorted(p for p in (cwd / "outputs" / "multirun").glob("*/*") if p.is_dir())


def make_run(cwd: Path) -> Path:
    """A finished training run made by the plain README command, found under outputs/."""
    result = run([RLRUN, *with_budget([], TRAIN_BUDGET)], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_folders(cwd)[-1]


def make_sweep(cwd: Path) -> Path:
    budget = {key: value for key, value in SWEEP_BUDGET.items() if not key.startswith("hydra.sweeper")}
    result = run([RLRUN, "-m", "agent=dqn,double_dqn", "seed=0", *with_budget([], budget)], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_folders(cwd)[-1]


def fill_placeholders(words: list[str], cwd: Path) -> list[str]:
    filled = []
    for word in words:
        for placeholder in RUN_PLACEHOLDERS:
            if placeholder in word and not word.startswith("path=outputs/multirun"):
                word = word.replace(placeholder, str(make_run(cwd).relative_to(cwd)))
        for placeholder in SWEEP_PLACEHOLDERS:
            if placeholder in word:
                word = word.replace(placeholder, str(make_sweep(cwd).relative_to(cwd)))
        for placeholder, replacement in FILE_PLACEHOLDERS.items():
            word = word.replace(placeholder, replacement)
        if word != "...":  # "and more options": the budget stands in for them
            filled.append(word)
    return filled


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_tensorboard(words: list[str], cwd: Path) -> None:
    """Start TensorBoard as the page says (on a free port) and see the run in its run list."""
    logdir = Path(cwd, words[words.index("--logdir") + 1])
    if not logdir.exists():
        if "multirun" in str(logdir):
            made = make_sweep(cwd)
            logdir.parent.mkdir(parents=True, exist_ok=True)
            made.rename(logdir)
        else:
            make_run(cwd)
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / words[0]), *words[1:], "--port", str(port), "--host", "127.0.0.1"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, runs = time.monotonic() + 60, []
        while time.monotonic() < deadline and not runs:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as response:
                    runs = json.loads(response.read())
            except OSError:
                time.sleep(0.5)
        assert runs, "TensorBoard listed no runs"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("command", COMMANDS)
def test_shown_command_runs_as_written(command, tmp_path):
    reason = skip_reason(command)
    if reason is not None:
        pytest.skip(reason)
    words = shlex.split(command)
    if words[0] == "tensorboard":
        check_tensorboard(words, tmp_path)
        return
    # `python -m rlrun` runs this Python's module, `rlrun` the installed console script
    head, args = ([sys.executable, "-m", "rlrun"], words[3:]) if words[0] == "python" else ([RLRUN], words[1:])
    args = with_budget(fill_placeholders(args, tmp_path), budget_for(args))
    before = set(run_folders(tmp_path)) | set(sweep_folders(tmp_path))
    result = run([*head, *args], tmp_path)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr

    if "--help" in args:
        assert "rlrun" in result.stdout
    elif "--cfg" in args:
        assert "agent:" in result.stdout
    elif is_sweep(args):
        new = [p for p in sweep_folders(tmp_path) if p not in before]
        assert new and (new[-1] / "summary.csv").is_file(), "a sweep writes its report into outputs/multirun/"
    elif "mode=plot" in args:
        target = Path(tmp_path, next(a for a in args if a.startswith("path=")).split("=", 1)[1])
        assert (target / "curves.png").is_file()
    else:
        new = [p for p in run_folders(tmp_path) if p not in before]
        resumed = next((a.split("=", 1)[1] for a in args if a.startswith("resume=")), None)
        folder = Path(tmp_path, resumed) if resumed else new[-1]
        if "mode=evaluate" in args:
            assert (folder / "eval.json").is_file()
        elif "mode=export" in args:  # written beside the checkpoint, named after it
            checkpoint = Path(tmp_path, next(a for a in args if a.startswith("checkpoint=")).split("=", 1)[1])
            assert checkpoint.with_suffix(".policy.json").is_file()
        else:
            assert (folder / "results.json").is_file() and (folder / "checkpoints" / "last.pt").is_file()
            steps = json.loads((folder / "results.json").read_text())["steps"]
            assert steps >= int(dict(a.split("=", 1) for a in args if "=" in a)["total_steps"])
