"""The lean same-step vector env against Gymnasium's SyncVectorEnv(SAME_STEP) + RecordEpisodeStatistics."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from rlrun.envs import make_env, make_vector_env
from tests.conftest import compose_cfg


@pytest.mark.parametrize("num_envs", [1, 3])
@pytest.mark.parametrize("env_overrides", [["env=cartpole", "env.max_episode_steps=30"], ["env=lunarlander"]])
def test_lean_vector_env_gives_gymnasiums_episodes_returns_and_lengths(num_envs, env_overrides):
    cfg = compose_cfg(*env_overrides, f"env.num_envs={num_envs}").env
    lean = make_vector_env(cfg)
    reference = RecordEpisodeStatistics(SyncVectorEnv([lambda: make_env(cfg) for _ in range(num_envs)],
                                                      autoreset_mode=AutoresetMode.SAME_STEP))
    assert lean.action_space == reference.action_space
    assert lean.single_observation_space == reference.single_observation_space
    lean_obs, _ = lean.reset(seed=7)
    reference_obs, _ = reference.reset(seed=7)
    np.testing.assert_array_equal(lean_obs, reference_obs)
    actions_rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(400):
        actions = actions_rng.integers(0, lean.single_action_space.n, num_envs)
        lean_out, reference_out = lean.step(actions), reference.step(actions)
        for got, expected in zip(lean_out[:4], reference_out[:4]):  # obs, rewards, terminated, truncated
            np.testing.assert_array_equal(got, expected)
            assert got.dtype == expected.dtype
        got_info, expected_info = lean_out[4], reference_out[4]
        assert ("_episode" in got_info) == ("_episode" in expected_info)
        if "_episode" in expected_info:
            episodes += int(expected_info["_episode"].sum())
            for key in ("_final_obs", "_episode"):
                np.testing.assert_array_equal(got_info[key], expected_info[key])
            done = expected_info["_final_obs"]
            np.testing.assert_array_equal(got_info["final_obs"][done], np.stack(expected_info["final_obs"][done]))
            for key in ("r", "l"):
                np.testing.assert_array_equal(got_info["episode"][key], expected_info["episode"][key])
    np.testing.assert_array_equal(lean.episode_returns, reference.episode_returns)
    np.testing.assert_array_equal(lean.episode_lengths, reference.episode_lengths)
    assert episodes >= 3 * num_envs  # the comparison covered several autoresets per sub-env
    lean.close()
    reference.close()
    assert lean.closed and all(env.unwrapped is not None for env in lean.envs)


def test_lean_vector_env_reports_a_bad_env_id_before_making_copies():
    from rlrun.errors import ConfigError

    with pytest.raises(ConfigError, match="env.id='NoSuchEnv-v0'"):
        make_vector_env(compose_cfg("env=gym", "env.id=NoSuchEnv-v0").env)
    assert isinstance(make_vector_env(compose_cfg("env=cartpole").env), gym.vector.VectorEnv)
