"""Does the default configuration actually learn? Real returns against real thresholds, fixed seed."""

import pytest

from rlrun.loop import train
from tests.conftest import compose_cfg


@pytest.mark.learning
def test_default_dqn_solves_cartpole(tmp_path):
    # The defaults, unchanged but for the device (CI has no GPU; auto would pick one if present).
    result = train(compose_cfg("device=cpu", "seed=0"), tmp_path)
    assert result["best_eval_return"] >= 195.0, result
