"""A plain (non-editable) install finds its configs: conf/ ships inside the package as rlrun.conf."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_non_editable_install_composes_the_config(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    assert (target / "rlrun" / "conf" / "agent" / "double_dqn.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}
    # run from an empty folder so nothing of the checkout can be found by accident
    result = subprocess.run(
        [sys.executable, "-m", "rlrun", "--cfg", "job", "agent=double_dqn"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "double: true" in result.stdout
    assert "tuned_settings: cartpole_double_dqn" in result.stdout  # conf/tuned/ ships too
    check = subprocess.run(
        [sys.executable, "-c", "import rlrun; print(rlrun.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert check.stdout.strip().startswith(str(target))
