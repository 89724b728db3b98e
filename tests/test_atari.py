"""Atari from pixels: the env presets, the missing-extra error, reward clipping only while training."""

import sys

import numpy as np
import pytest

from rlrun.config import load_config
from rlrun.envs import make_env, make_vector_env
from rlrun.errors import ConfigError

try:
    import ale_py  # noqa: F401
    import cv2  # noqa: F401
    HAVE_ATARI = True
except ImportError:
    HAVE_ATARI = False

needs_atari = pytest.mark.skipif(not HAVE_ATARI, reason='needs the atari extra: pip install "rlrun[atari]"')


def test_atari_presets_compose_with_their_keys_and_eval_epsilon():
    cfg = load_config(["env=breakout"])
    assert cfg.env.id == "ALE/Breakout-v5" and cfg.env.frame_stack == 4 and cfg.env.clip_rewards
    assert cfg.eval.epsilon == 0.05  # the Atari presets evaluate with the usual 0.05
    assert load_config(["env=breakout", "eval.epsilon=0"]).eval.epsilon == 0.0  # the command line wins
    assert load_config(["env=pong"]).env.id == "ALE/Pong-v5"
    assert load_config(["env=atari", "env.id=ALE/SpaceInvaders-v5"]).env.name == "atari"
    assert load_config(["env=cartpole"]).eval.epsilon == 0.0  # other envs stay greedy


@pytest.mark.parametrize("override,key", [("env.repeat_action_probability=1.5", "env.repeat_action_probability"),
                                          ("env.frame_stack=0", "env.frame_stack"),
                                          ("eval.epsilon=-0.1", "eval.epsilon")])
def test_bad_atari_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(["env=breakout", override])


@pytest.mark.parametrize("missing", ["ale_py", "cv2"])
def test_missing_extra_names_the_extra_before_any_env_is_built(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` raise ImportError
    cfg = load_config(["env=breakout"])
    with pytest.raises(ConfigError, match=r'pip install "rlrun\[atari\]"') as error:
        make_vector_env(cfg.env)
    assert {"ale_py": "ale-py", "cv2": "opencv-python-headless"}[missing] in str(error.value)
    with pytest.raises(ConfigError, match=r"rlrun\[atari\]"):  # any ALE id, also through env=gym
        make_env(load_config(["env=gym", "env.id=ALE/Pong-v5"]).env)


@needs_atari
def test_breakout_preset_gives_stacked_84x84_uint8_frames_from_an_unskipping_emulator():
    cfg = load_config(["env=breakout", "env.repeat_action_probability=0.0"])
    env = make_env(cfg.env)
    assert env.observation_space.shape == (4, 84, 84) and env.observation_space.dtype == np.uint8
    assert env.unwrapped._frameskip == 1  # skipping is AtariPreprocessing's, not the emulator's
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84)
    assert all(np.array_equal(obs[0], obs[i]) for i in range(4))  # padded with the reset frame, never zeros
    env.close()


@needs_atari
def test_rewards_are_clipped_for_training_only():
    cfg = load_config(["env=gym", "env.id=ALE/Breakout-v5"])  # only to check the id resolves through env=gym
    make_env(cfg.env).close()
    cfg = load_config(["env=breakout"])
    from gymnasium.wrappers import ClipReward

    def wrappers(env):
        found = []
        while hasattr(env, "env"):
            found.append(type(env))
            env = env.env
        return found

    assert ClipReward in wrappers(make_env(cfg.env, training=True))
    assert ClipReward not in wrappers(make_env(cfg.env))  # evaluation: the game's own score
    assert ClipReward not in wrappers(make_env(load_config(["env=breakout", "env.clip_rewards=false"]).env,
                                               training=True))
