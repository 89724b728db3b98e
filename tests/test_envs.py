"""The lean same-step vector env against Gymnasium's SyncVectorEnv(SAME_STEP) + RecordEpisodeStatistics."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from rlrun.envs import make_env, make_vector_env
from tests.conftest import compose_cfg


@pytest.mark.parametrize("num_envs", [1, 3])
@pytest.mark.parametrize("env_overrides", [["env=cartpole", "env.max_episode_steps=30"], ["env=lunarlander"]])
def test_lean_vector_env_gives_gymnasiums_episodes_returns_and_lengths(num_envs, env_overrides):
    cfg = compose_cfg(*env_overrides, f"env.num_envs={num_envs}").env
    lean = make_vector_env(cfg)
    reference = RecordEpisodeStatistics(
        SyncVectorEnv([lambda: make_env(cfg) for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP)
    )
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


# ----------------------------------------------------------------------------- env state on resume
class StateIsTheLastFrame(gym.Env):
    """Like CarRacing: a ``state`` attribute that holds what was last shown, while the physics is elsewhere."""

    observation_space = gym.spaces.Box(-100.0, 100.0, (1,), np.float64)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0.0
        self.state = np.array([self.position])
        return self.state.copy(), {}

    def step(self, action):
        self.position += 1.0 if action else -1.0
        self.state = np.array([self.position])
        return self.state.copy(), 1.0, False, False, {}


gym.register("rlrun-test/StateIsTheLastFrame-v0", entry_point=StateIsTheLastFrame, max_episode_steps=50)


def test_an_env_whose_state_is_not_its_physics_resumes_with_fresh_episodes(tmp_path, caplog):
    import logging

    from rlrun.checkpoints import load_checkpoint
    from rlrun.loop import Trainer

    cfg = compose_cfg(
        "env=gym",
        "env.id=rlrun-test/StateIsTheLastFrame-v0",
        "agent=random",
        "total_steps=7",
        "eval.episodes=1",
        "device=cpu",
    )
    Trainer(cfg, tmp_path / "run").run()  # 7 steps into a 50-step episode, then last.pt
    payload = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert payload["run_state"]["envs"]["sub_envs"][0]["physical"] is None  # only allow-listed classes record it
    # and a checkpoint written before the allow-list, which recorded this env's state, is not trusted either
    payload["run_state"]["envs"]["sub_envs"][0]["physical"] = torch.tensor([3.0], dtype=torch.float64)
    resumed = Trainer(cfg, tmp_path / "resumed", resume_from=payload)
    with caplog.at_level(logging.WARNING, logger="rlrun.loop"):
        resumed.restore(payload)
    assert "resuming with fresh episodes" in caplog.text
    assert resumed.envs.envs[0].unwrapped.position == 0.0 and resumed.obs.tolist() == [[0.0]]
    assert resumed.envs.episode_lengths.tolist() == [0]  # the old episode's length does not carry on
    resumed.close()


def test_car_racing_state_is_its_last_frame_so_resume_starts_fresh_episodes():
    from rlrun.envs import capture_env_state, restore_env_state

    cfg = compose_cfg("env=gym", "env.id=CarRacing-v3").env
    envs = make_vector_env(cfg)
    envs.reset(seed=0)
    for _ in range(3):
        envs.step(np.array([[0.0, 1.0, 0.0]], dtype=np.float32))
    assert np.asarray(envs.envs[0].unwrapped.state).shape == (96, 96, 3)  # pixels, not the car
    state = capture_env_state(envs)
    assert state["sub_envs"][0]["physical"] is None
    assert restore_env_state(envs, state) is False
    envs.close()


@pytest.mark.parametrize(
    "env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]
)
def test_classic_control_episodes_are_continued_exactly(env_id):
    from rlrun.envs import capture_env_state, restore_env_state

    cfg = compose_cfg("env=gym", f"env.id={env_id}").env
    envs, resumed = make_vector_env(cfg), make_vector_env(cfg)
    envs.reset(seed=3)
    for _ in range(5):
        envs.step(envs.action_space.sample())
    state = capture_env_state(envs)
    resumed.reset(seed=11)
    assert restore_env_state(resumed, state) is True
    for _ in range(20):
        actions = envs.action_space.sample()
        for got, expected in zip(resumed.step(actions)[:4], envs.step(actions)[:4]):
            np.testing.assert_array_equal(got, expected)
