"""Does the default configuration actually learn? Real returns against real thresholds, fixed seed."""

import pytest

from rlrun.loop import train
from tests.conftest import compose_cfg


@pytest.mark.learning
def test_default_dqn_solves_cartpole(tmp_path):
    # `rlrun seed=0`: DQN with conf/tuned/cartpole_dqn.yaml, only the device pinned (CI has no GPU). README's
    # table (results/learning/cartpole_dqn.json): every seed of 0-9 first reaches 475 over 20 greedy episodes
    # within the 50k-step budget, seed 0 at 40k. Stopping there keeps the test short; the steps before the stop
    # are the same as in the full run.
    cfg = compose_cfg("device=cpu", "seed=0", "eval.episodes=20", "stop_at_return=475")
    assert cfg.tuned_settings == "cartpole_dqn" and cfg.total_steps == 50_000
    result = train(cfg, tmp_path)
    assert result["best_eval_return"] >= 475.0 and result["solved_at_step"] <= 50_000, result
