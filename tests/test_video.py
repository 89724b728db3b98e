"""Episode videos: MP4s with one frame per step (read back with imageio), headless, and GIFs in TensorBoard."""

import imageio.v3 as iio
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlrun.agents import RandomAgent
from rlrun.logger import RunLogger
from rlrun.loop import train
from rlrun.video import episodes_to_record, make_render_env, record_episode
from tests.conftest import TINY_RUN, compose_cfg


def test_recorded_mp4_has_the_reset_frame_and_one_frame_per_step(tmp_path):
    cfg = compose_cfg("env.max_episode_steps=15")
    env = make_render_env(cfg.env, cfg.eval.max_episode_steps)
    agent = RandomAgent(env.action_space, seed=0)
    episode = record_episode(agent, env, seed=3, path=tmp_path / "episode.mp4")
    env.close()
    frames = list(iio.imiter(tmp_path / "episode.mp4"))
    assert 1 <= episode.length <= 15
    assert len(frames) == len(episode.frames) == episode.length + 1
    assert frames[0].shape == (400, 600, 3)  # CartPole's rgb_array size, kept as it is
    assert episode.fps == 50  # CartPole's render_fps


def test_lunarlander_renders_headless(tmp_path):
    env = make_render_env(compose_cfg("env=lunarlander", "env.max_episode_steps=5").env, max_episode_steps=10_000)
    episode = record_episode(RandomAgent(env.action_space, seed=0), env, seed=0, path=tmp_path / "lander.mp4")
    env.close()
    assert len(list(iio.imiter(tmp_path / "lander.mp4"))) == episode.length + 1 == 6


def test_default_episodes_to_film_are_the_first_and_the_best():
    assert episodes_to_record(None, [10.0, 30.0, 20.0]) == [0, 1]
    assert episodes_to_record(None, [50.0, 30.0]) == [0]  # the first is the best: filmed once
    assert episodes_to_record([2, 0, 2], [1.0, 2.0, 3.0]) == [0, 2]


def test_training_films_a_greedy_episode_every_video_every_steps(tmp_path):
    overrides = [o for o in TINY_RUN if not o.startswith("eval.episodes")]
    train(compose_cfg(*overrides, "eval.episodes=1", "eval.video_every=300", "env.max_episode_steps=20"), tmp_path)
    videos = sorted(p.name for p in (tmp_path / "videos").iterdir())
    assert videos == ["step_00000300.mp4", "step_00000600.mp4"]

    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    gifs = events.Images("eval/video")
    assert [gif.step for gif in gifs] == [300, 600]
    for gif in gifs:
        tensorboard_frames = iio.imread(gif.encoded_image_string, extension=".gif")
        # GIF encoding merges identical consecutive frames (CartPole often moves less than a pixel), so
        # frame counts are checked on distinct frames in test_logger_video_is_an_animated_gif below
        assert len(tensorboard_frames) > 1
        assert tensorboard_frames.shape[1:3] == (200, 300)  # half size in TensorBoard
        assert np.ptp(tensorboard_frames) > 0  # not a blank image


def test_logger_video_is_an_animated_gif_with_every_frame(tmp_path):
    frames = [np.full((40, 60, 3), 30 * i, dtype=np.uint8) for i in range(7)]  # all different
    logger = RunLogger(tmp_path)
    logger.video("eval/video", frames, fps=25, step=12)
    logger.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    (image,) = events.Images("eval/video")
    assert image.step == 12 and (image.width, image.height) == (30, 20)
    gif = iio.imread(image.encoded_image_string, extension=".gif")
    assert gif.shape == (7, 20, 30, 3)
    assert [int(frame[0, 0, 0]) for frame in gif] == [30 * i for i in range(7)]
