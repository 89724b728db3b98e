"""The ``rlrun`` command as a user runs it: Hydra's flags, the modes, and one-paragraph errors."""

import json
import re
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_RUN, run_cli


def assert_clean_failure(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert re.search(fragment, result.stderr), f"{fragment!r} not in:\n{result.stderr}"


def test_cfg_job_prints_the_composed_config():
    result = run_cli("--cfg", "job", "agent=dqn", "env=acrobot")
    assert result.returncode == 0, result.stderr
    assert "id: Acrobot-v1" in result.stdout and "name: dqn" in result.stdout


def test_help_is_rlrun_s_own_first_screen():
    result = run_cli("--help")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("rlrun: "), lines[0]
    assert "powered by Hydra" not in result.stdout and "schema/" not in result.stdout
    conf = Path(__file__).resolve().parents[1] / "conf"
    for group in ("env", "agent", "buffer", "schedule", "device"):
        listed = next(line for i, line in enumerate(lines) if i and lines[i - 1].strip().startswith(group + " "))
        options = sorted(path.stem for path in (conf / group).glob("*.yaml"))
        assert [option.rstrip("*") for option in listed.strip().split(", ")] == options, (group, listed)
    assert "dqn*" in result.stdout and "cartpole*" in result.stdout  # defaults are marked
    examples = lines[lines.index("== Examples ==") + 1 :]
    assert 2 <= len(examples) <= 4 and all(line.strip().startswith("rlrun") for line in examples)


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["agent=dpn"], [r"agent/dpn", "Available options", "double_dqn"]),
        (["agent.lrr=1"], [r"agent\.lrr", "not in"]),
        (["agent.lr=fast"], [r"agent\.lr", "fast", "Float"]),
        (["agent.lr=0"], [r"agent\.lr=0", "positive"]),
        (["agent.batch_size=512", "buffer.capacity=100"], [r"agent\.batch_size=512", r"buffer\.capacity=100"]),
        (["env=gym", "env.id=Pendulum-v1"], [r"agent=dqn needs a discrete action space", "Pendulum-v1"]),
        (["env=gym", "env.id=NoSuchEnv-v0"], [r"env\.id='NoSuchEnv-v0'", "registered"]),
        (["mode=evaluate", "checkpoint=/nonexistent/best.pt"], [r"checkpoint='/nonexistent/best\.pt' does not exist"]),
        (["mode=evaluate"], [r"mode=evaluate needs checkpoint=PATH"]),
    ],
)
def test_bad_input_fails_before_training_with_one_paragraph(tmp_path, args, fragments):
    result = run_cli(*args, f"hydra.run.dir={tmp_path}")
    assert_clean_failure(result, *fragments)
    assert not list(tmp_path.glob("events.out.tfevents*")), "training must not have started"


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    result = run_cli("mode=evaluate", f"checkpoint={bad}", f"hydra.run.dir={tmp_path / 'run'}")
    assert_clean_failure(result, "could not be read", "corrupted")


def test_train_then_evaluate_from_the_command_line(tmp_path):
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    result = run_cli(*TINY_RUN, f"hydra.run.dir={train_dir}")
    assert result.returncode == 0, result.stderr
    assert (train_dir / ".hydra" / "config.yaml").is_file()
    assert (train_dir / "checkpoints" / "best.pt").is_file() and (train_dir / "checkpoints" / "last.pt").is_file()
    assert list(train_dir.glob("events.out.tfevents*"))

    checkpoint = train_dir / "checkpoints" / "best.pt"
    result = run_cli("mode=evaluate", f"checkpoint={checkpoint}", "eval.episodes=4", f"hydra.run.dir={eval_dir}")
    assert result.returncode == 0, result.stderr
    assert re.search(r"4 greedy episodes: return [\d.]+ ± [\d.]+ \(min [\d.]+, max [\d.]+\)", result.stdout)
    report = json.loads((eval_dir / "eval.json").read_text())
    assert report["episodes"] == 4 and report["checkpoint"] == str(checkpoint)

    # the same checkpoint on an env with other shapes is refused, naming both
    result = run_cli(
        "mode=evaluate", f"checkpoint={checkpoint}", "env=lunarlander", f"hydra.run.dir={tmp_path / 'mismatch'}"
    )
    assert_clean_failure(result, r"observations \[4\]", r"LunarLander-v3 has observations \[8\]")


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("PWNED",))

    path = tmp_path / "evil.pt"
    torch.save({"config": {}, "agent": Exploit()}, path)
    result = run_cli("mode=evaluate", f"checkpoint={path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert_clean_failure(result, "refused", "weights_only")
    assert "PWNED" not in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_missing_device_fails_clearly(tmp_path):
    result = run_cli("device=cuda", *TINY_RUN[:-1], f"hydra.run.dir={tmp_path}")
    assert_clean_failure(result, "device=cuda", "device=auto")


@pytest.mark.parametrize("args", [["total_steps=10"], ["-m", "seed=0,1", "total_steps=10"]], ids=["run", "sweep"])
def test_an_output_folder_that_cannot_be_made_is_one_paragraph(tmp_path, args):
    # A folder under a regular file cannot be made, not even by root (chmod would not stop root).
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    folder = blocker / "run"
    key = "hydra.sweep.dir" if args[0] == "-m" else "hydra.run.dir"
    cwd = tmp_path / "fresh"
    cwd.mkdir()
    result = run_cli(*args, f"{key}={folder}", cwd=cwd)
    assert result.returncode == 1
    assert_clean_failure(
        result,
        r"^rlrun: error: could not create the output folder " + re.escape(str(folder)),
        "Not a directory",
        re.escape(f"{blocker} is a file"),
        "GB free",
        "Nothing was run",
        re.escape(f"{key}="),
    )
    assert list(cwd.iterdir()) == []  # nothing was written elsewhere instead


def test_an_existing_folder_that_takes_no_files_is_one_paragraph(tmp_path):
    # /proc/1 exists and no one, not even root, can create a file in it: mkdir(exist_ok) alone passed it on to
    # Hydra's log-file handler, which failed with a traceback
    result = run_cli("total_steps=10", "hydra.run.dir=/proc/1", cwd=tmp_path)
    assert result.returncode == 1
    assert_clean_failure(result, r"^rlrun: error: could not create the output folder /proc/1", "Nothing was run")


def test_a_full_disk_while_filming_a_training_video_is_one_paragraph(tmp_path, monkeypatch):
    import errno
    import os

    import rlrun.loop as loop
    from rlrun.errors import OutputWriteError
    from tests.conftest import compose_cfg

    def full(path, frames, fps):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(loop, "write_mp4", full)
    with pytest.raises(OutputWriteError, match=r"could not write the training video .*step_00000200\.mp4"):
        loop.train(compose_cfg(*TINY_RUN, "total_steps=400", "eval.video_every=200"), tmp_path)


def test_a_full_disk_mid_run_is_one_paragraph_with_the_way_to_continue(tmp_path):
    # ENOSPC from the third checkpoint write on (after two good last.pt saves), through rlrun's CLI entry point.
    script = (
        "import errno, os, sys, torch\n"
        "real_save, calls = torch.save, []\n"
        "def save(obj, f):\n"
        "    calls.append(1)\n"
        "    if len(calls) >= 3:\n"
        "        f.write(b'x' * 4096)\n"
        "        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "    real_save(obj, f)\n"
        "torch.save = save\n"
        "from rlrun.cli import main\n"
        "sys.argv[0] = 'rlrun'\n"
        "main()\n"
    )
    import subprocess
    import sys

    args = [*TINY_RUN, "total_steps=1000", "save_every=200", "eval.every=100000", f"hydra.run.dir={tmp_path}"]
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
    last = tmp_path / "checkpoints" / "last.pt"
    assert result.returncode == 1
    assert_clean_failure(
        result,
        "rlrun: error: could not write the checkpoint " + re.escape(str(last)),
        r"No space left on device \(ENOSPC\)",
        "GB free",
        re.escape(f"the last good checkpoint, {last} (env step 400), is left in place"),
        re.escape(f"continue with: rlrun resume={tmp_path}"),
    )
    assert result.stderr.count("rlrun: error:") == 1
    assert torch.load(last, weights_only=True)["progress"]["step"] == 400
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))
