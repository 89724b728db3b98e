"""Atari from pixels: the env presets, the missing-extra error, reward clipping only while training."""

import sys

import numpy as np
import pytest
import torch

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


@pytest.mark.parametrize(
    "override,key",
    [
        ("env.repeat_action_probability=1.5", "env.repeat_action_probability"),
        ("env.frame_stack=0", "env.frame_stack"),
        ("eval.epsilon=-0.1", "eval.epsilon"),
    ],
)
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
    assert ClipReward not in wrappers(
        make_env(load_config(["env=breakout", "env.clip_rewards=false"]).env, training=True)
    )


# ----------------------------------------------------------------------------- evaluation epsilon (any env)
def test_eval_epsilon_replays_the_same_random_steps_for_the_same_seed():
    from rlrun.evaluation import run_greedy_episodes

    class AlwaysLeft:
        def act_greedy(self, obs):
            return np.zeros(len(obs), dtype=np.int64)

    cfg = load_config(["env=cartpole"])
    greedy = run_greedy_episodes(AlwaysLeft(), make_env(cfg.env), [1, 2])
    noisy_env = make_env(cfg.env, epsilon=0.5)
    noisy = run_greedy_episodes(AlwaysLeft(), noisy_env, [1, 2])
    assert noisy == run_greedy_episodes(AlwaysLeft(), make_env(cfg.env, epsilon=0.5), [1, 2])  # reproducible
    assert noisy["lengths"] != greedy["lengths"]  # random pushes to the right keep the pole up longer or shorter
    actions = []
    real_step = noisy_env.env.step
    noisy_env.env.step = lambda action: (actions.append(int(action)), real_step(action))[1]
    run_greedy_episodes(AlwaysLeft(), noisy_env, list(range(3, 43)))
    share_random_right = np.mean(actions)  # half the steps are random, half of those push right
    assert 0.1 < share_random_right < 0.4


def test_eval_epsilon_on_continuous_actions_is_refused():
    with pytest.raises(ConfigError, match=r"eval\.epsilon=0\.05 needs a discrete action space"):
        make_env(load_config(["env=gym", "env.id=Pendulum-v1"]).env, epsilon=0.05)


# ----------------------------------------------------------------------------- training, resume, evaluate
ATARI_SMOKE = [
    "env=breakout",
    "agent=double_dqn",
    "agent.dueling=true",
    "buffer.capacity=1000",
    "agent.learning_starts=200",
    "agent.batch_size=16",
    "agent.train_freq=16",
    "total_steps=2000",
    "eval.every=1000",
    "eval.episodes=1",
    "save_every=1000",
    "log_every=100",
    "device=cpu",
    "seed=3",
    "save_buffer=true",
]  # the tuned Breakout file leaves the 7 GB buffer out of last.pt; here it is small


@pytest.fixture(scope="module")
def breakout_run(tmp_path_factory):
    """A 2,000-step Breakout run on CPU, stopped at step 1,000 (as by Ctrl-C) and resumed to the end."""
    import signal

    from rlrun.checkpoints import load_checkpoint
    from rlrun.cli import run
    from rlrun.loop import Trainer
    from tests.conftest import compose_cfg, interrupt_at

    run_dir = tmp_path_factory.mktemp("breakout")
    trainer = Trainer(compose_cfg(*ATARI_SMOKE), run_dir)
    interrupt_at(trainer, 1000)
    assert trainer.run() == {"interrupted_by": signal.SIGINT, "steps": 1000}
    at_stop = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    result = run(compose_cfg(f"resume={run_dir}"), run_dir / "hydra", [f"resume={run_dir}"])
    return run_dir, at_stop, result


@needs_atari
def test_breakout_smoke_run_writes_the_usual_scalars_and_resumes(breakout_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, at_stop, result = breakout_run
    assert result["steps"] == 2000
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    for tag in (
        "charts/episodic_return",
        "charts/steps_per_second",
        "train/epsilon",
        "losses/td_loss",
        "losses/q_values",
        "eval/mean_return",
    ):
        steps = [e.step for e in events.Scalars(tag)]
        assert steps and steps == sorted(set(steps)), tag  # written, no step twice across the resume
    assert [e.step for e in events.Scalars("charts/steps_per_second")][-1] == 2000
    assert {e.step for e in events.Scalars("eval/mean_return")} == {1000, 2000}
    # what the resume started from: a full frame buffer (stored frame by frame) and the run state
    replay = at_stop["agent"]["replay"]
    assert replay["size"] == 1000 and replay["frames"].shape[1:] == (84, 84) and "obs" not in replay
    assert len(replay["frames"]) < 1.1 * 1000  # about one frame per transition, not eight
    assert at_stop["run_state"]["envs"]["sub_envs"][0]["physical"] is None  # Atari: fresh episodes on resume


@needs_atari
def test_resumed_breakout_agent_starts_from_the_saved_state(tmp_path, breakout_run):
    from rlrun.loop import Trainer

    run_dir, at_stop, _ = breakout_run
    config = at_stop["config"]
    from omegaconf import OmegaConf

    trainer = Trainer(OmegaConf.create(config), tmp_path)
    trainer.restore(at_stop)
    for key, value in at_stop["agent"]["online"].items():
        assert torch.equal(trainer.agent.online.state_dict()[key], value)
    buffer = trainer.agent.buffer
    assert len(buffer) == 1000
    obs, next_obs = np.empty((1000, 4, 84, 84), np.uint8), np.empty((1000, 4, 84, 84), np.uint8)
    buffer.observations.gather(np.arange(1000), obs, next_obs)
    assert (obs[1:, 1:] == next_obs[:-1, 1:]).mean() > 0.9  # rebuilt stacks chain up as the env made them
    trainer.close()


@needs_atari
def test_breakout_evaluate_mode_with_video_and_compare(tmp_path, breakout_run):
    import json

    from rlrun.cli import run
    from tests.conftest import compose_cfg

    run_dir, _, _ = breakout_run
    checkpoint = run_dir / "checkpoints" / "last.pt"
    overrides = [
        "mode=evaluate",
        f"checkpoint={checkpoint}",
        "eval.episodes=1",
        "eval.video=true",
        "eval.compare=[random]",
    ]
    run(compose_cfg(*overrides), tmp_path, overrides)
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["env"] == "ALE/Breakout-v5" and report["config"]["eval"]["epsilon"] == 0.05
    assert report["compare"][0]["policy"] == "random"
    assert float(report["returns"][0]).is_integer()  # the game score (unclipped: bricks are worth 1 to 7)
    video = tmp_path / "videos" / "episode_000.mp4"
    import imageio

    with imageio.get_reader(video) as reader:
        frame = reader.get_data(0)
    assert frame.shape[2] == 3 and frame.shape[:2] == (210, 160)  # the colour screen, not the 84 x 84 input
    assert not np.allclose(frame[..., 0], frame[..., 1])  # colour


# ----------------------------------------------------------------------------- lives and episode caps
@needs_atari
def test_a_lost_life_ends_the_agents_episode_but_the_game_goes_on():
    """env.terminal_on_life_loss: terminated at every lost life (5 per Breakout game), one game per `episode`."""
    cfg = load_config(["env=breakout", "env.terminal_on_life_loss=true"])
    envs = make_vector_env(cfg.env)
    obs, _ = envs.reset(seed=0)
    ale = envs.envs[0].unwrapped.ale
    actions = np.random.default_rng(0).integers(0, 4, (1500, 1))
    lives_seen, games, terminations, life_steps, steps_in_game = set(), [], 0, [], 0
    for action in actions:
        frame_before = ale.getEpisodeFrameNumber()
        next_obs, _, terminated, truncated, infos = envs.step(action)
        lives_seen.add(ale.lives())
        steps_in_game += 1
        if terminated[0]:
            terminations += 1
            life_steps.append(steps_in_game)
        if "_episode" in infos and infos["_episode"][0]:  # a whole game
            games.append((int(infos["episode"]["l"][0]), terminations))
            steps_in_game, terminations = 0, 0
        elif terminated[0]:  # a lost life: the same game, the same screen, the frame stack going on
            assert infos["_final_obs"][0]
            np.testing.assert_array_equal(next_obs[0], infos["final_obs"][0])
            assert ale.getEpisodeFrameNumber() > frame_before and ale.lives() >= 1
        assert not truncated[0]
    assert {5, 4, 3, 2, 1} <= lives_seen
    assert len(games) >= 3
    for length, lives_lost in games:
        assert lives_lost == 5  # every life's end was terminal for the agent, the game's too
        assert length > 5 * 20  # the game's length, not one life's
    envs.close()


@needs_atari
def test_training_episode_statistics_count_whole_games(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rlrun.loop import Trainer
    from tests.conftest import compose_cfg

    cfg = compose_cfg(
        "env=breakout",
        "env.terminal_on_life_loss=true",
        "agent=random",
        "total_steps=1000",
        "eval.every=100000",
        "eval.episodes=1",
        "device=cpu",
        "seed=1",
    )
    trainer = Trainer(cfg, tmp_path)
    step, terminations = trainer.envs.step, []

    def counting_step(actions):
        out = step(actions)
        terminations.append(bool(out[2][0]))
        return out

    trainer.envs.step = counting_step
    result = trainer.run()
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    lengths = [int(e.value) for e in events.Scalars("charts/episodic_length")]
    game_ends = np.flatnonzero(terminations)[4::5] + 1  # every fifth lost life is a game over, at these steps
    assert len(game_ends) >= 2
    assert result["episodes"] == len(lengths) == len(game_ends)
    assert lengths == np.diff(game_ends, prepend=0).tolist()


def test_atari_evaluation_is_capped_where_the_ale_caps_an_episode():
    from rlrun.config import ALE_EPISODE_FRAMES, eval_step_cap

    assert ALE_EPISODE_FRAMES == 108_000
    assert eval_step_cap(load_config(["env=breakout"])) == 27_000  # 108,000 frames at 4 per agent step
    assert eval_step_cap(load_config(["env=pong", "env.frame_skip=5"])) == 21_600
    assert eval_step_cap(load_config(["env=gym", "env.id=ALE/Pong-v5"])) == 27_000  # the emulator skips 4
    assert eval_step_cap(load_config(["env=gym", "env.id=ALE/Pong-v5", "+env.kwargs.frameskip=2"])) == 54_000
    assert eval_step_cap(load_config(["env=breakout", "eval.max_episode_steps=500"])) == 500  # set: it wins
    assert eval_step_cap(load_config(["env=cartpole"])) == 10_000  # other envs: as before


@needs_atari
def test_atari_training_and_evaluation_episodes_end_at_the_same_108000_frames():
    from rlrun.config import ALE_EPISODE_FRAMES, eval_step_cap
    from rlrun.envs import episode_step_limit, make_eval_env

    cfg = load_config(["env=breakout"])
    training = make_env(cfg.env, training=True)
    evaluation = make_eval_env(cfg.env, eval_step_cap(cfg))
    for env in (training, evaluation):  # the emulator's own cap, in frames, in both
        assert env.unwrapped.ale.getInt("max_num_frames_per_episode") == ALE_EPISODE_FRAMES
    assert episode_step_limit(evaluation) * cfg.env.frame_skip == ALE_EPISODE_FRAMES  # not 10,000 agent steps
    training.close()
    evaluation.close()


@needs_atari
def test_atari_max_episode_steps_counts_agent_steps_not_emulator_frames():
    cfg = load_config(["env=breakout", "env.max_episode_steps=40", "env.repeat_action_probability=0.0"])
    env = make_env(cfg.env, training=True)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for length in range(1, 41):  # noqa: B007 - read after the loop: the step the game ended at
        _, _, terminated, truncated, _ = env.step(int(rng.integers(4)))
        if terminated or truncated:
            break
    assert (length, truncated) == (40, True)  # a random Breakout game lasts far longer than 40 agent steps
    env.close()
