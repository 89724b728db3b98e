"""``mode=evaluate`` reports: eval.json, returns.png, compare on the same seeds, videos of chosen episodes."""

import json

import imageio.v3 as iio
import pytest

import rlrun.evaluation as evaluation
from rlrun.cli import run
from rlrun.errors import ConfigError
from rlrun.evaluation import eval_seeds, format_compare_table, success_rate
from rlrun.loop import train
from tests.conftest import TINY_RUN, compose_cfg


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train(compose_cfg(*TINY_RUN), run_dir)
    return str(run_dir / "checkpoints" / "best.pt")


def evaluate_checkpoint(checkpoint, run_dir, *overrides):
    args = ["mode=evaluate", f"checkpoint={checkpoint}", *overrides]
    return run(compose_cfg(*args), run_dir, args)


def test_report_holds_per_episode_numbers_and_their_summary(checkpoint, tmp_path, capsys):
    report = evaluate_checkpoint(checkpoint, tmp_path, "eval.episodes=4", "seed=5")
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["seed"] == 5 and saved["seeds"] == eval_seeds(5, 4, held_out=True)
    assert saved["episode_seeds"] == "heldout"
    assert len(saved["returns"]) == len(saved["lengths"]) == 4
    ordered = sorted(saved["returns"])
    assert saved["median"] == pytest.approx((ordered[1] + ordered[2]) / 2)
    assert saved["min"] == min(saved["returns"]) and saved["max"] == max(saved["returns"])
    assert saved["reward_threshold"] == 475.0
    assert saved["success_rate"] == sum(r >= 475.0 for r in saved["returns"]) / 4  # share of episodes at threshold
    assert saved["compare"] == [] and report["mean"] == saved["mean"]
    height, width = iio.imread(tmp_path / "returns.png").shape[:2]
    assert (width, height) == (800, 450)
    assert not (tmp_path / "compare.md").exists()
    assert "wrote" in capsys.readouterr().out


def test_evaluate_plays_held_out_episodes_no_periodic_evaluation_played(checkpoint, tmp_path, monkeypatch):
    """best.pt was picked by the periodic evaluations: scoring it on their episodes again would be optimistic."""
    trained_with_seed = 0  # TINY_RUN's seed: its periodic evaluations played eval_seeds(0, n)
    periodic_seeds_played = []
    real_run = evaluation.run_greedy_episodes

    def spy(agent, env, seeds):
        periodic_seeds_played.append(list(seeds))
        return real_run(agent, env, seeds)

    monkeypatch.setattr(evaluation, "run_greedy_episodes", spy)
    report = evaluate_checkpoint(checkpoint, tmp_path, "eval.episodes=50")
    held_out = set(periodic_seeds_played[0])
    assert held_out == set(report["seeds"]) and len(held_out) == 50
    # no periodic evaluation of this training seed, nor of any neighbouring one, plays these episodes
    for training_seed in range(trained_with_seed, trained_with_seed + 20):
        assert held_out.isdisjoint(eval_seeds(training_seed, 1000))
    (tmp_path / "periodic").mkdir()
    replay = evaluate_checkpoint(checkpoint, tmp_path / "periodic", "eval.episodes=5", "eval.episode_seeds=periodic")
    assert replay["seeds"] == eval_seeds(trained_with_seed, 5) and replay["episode_seeds"] == "periodic"


def test_episode_seed_blocks_of_neighbouring_training_seeds_do_not_overlap():
    for seed in (0, 1, 7):
        periodic, held_out = set(eval_seeds(seed, 1000)), set(eval_seeds(seed, 1000, held_out=True))
        neighbour = set(eval_seeds(seed + 1, 1000)) | set(eval_seeds(seed + 1, 1000, held_out=True))
        assert periodic.isdisjoint(held_out) and not (periodic | held_out) & neighbour
    with pytest.raises(ConfigError, match="eval.episodes"):
        eval_seeds(0, 1_000_001)


def test_compare_plays_every_policy_on_the_same_episode_seeds(checkpoint, tmp_path, monkeypatch, capsys):
    seeds_played = []
    real_run = evaluation.run_greedy_episodes

    def spy(agent, env, seeds):
        seeds_played.append((type(agent).__name__, list(seeds)))
        return real_run(agent, env, seeds)

    monkeypatch.setattr(evaluation, "run_greedy_episodes", spy)
    report = evaluate_checkpoint(checkpoint, tmp_path, "eval.episodes=3", f"eval.compare=[random,{checkpoint}]")
    assert [name for name, _ in seeds_played] == ["DQNAgent", "RandomAgent", "DQNAgent"]
    assert all(seeds == report["seeds"] for _, seeds in seeds_played)
    random_report, same_checkpoint = report["compare"]
    assert random_report["policy"] == "random" and random_report["seeds"] == report["seeds"]
    # the same greedy policy on the same seeds replays the same episodes
    assert same_checkpoint["returns"] == report["returns"] and same_checkpoint["lengths"] == report["lengths"]

    table = (tmp_path / "compare.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "policy" not in line]
    assert len(rows) == 3 and rows[1].startswith("| random |")
    assert "success (return ≥ 475)" in table and table in capsys.readouterr().out
    assert json.loads((tmp_path / "eval.json").read_text())["compare"][0]["seeds"] == report["seeds"]


def test_random_needs_no_checkpoint_and_compares_too(tmp_path):
    args = ["mode=evaluate", "agent=random", "eval.episodes=2", "eval.compare=[random]"]
    report = run(compose_cfg(*args), tmp_path, args)
    assert report["checkpoint"] is None and report["compare"][0]["seeds"] == report["seeds"]
    assert (tmp_path / "compare.md").is_file()


@pytest.mark.parametrize(
    "entry,fragment",
    [
        ("no_such_agent", r"neither an agent preset nor a checkpoint file.*random"),
        ("missing/best.pt", r"looks like a checkpoint path, but no such file exists"),
        ("dqn", r"'dqn' is a learning agent"),
    ],
)
def test_bad_compare_entries_fail_before_any_episode(checkpoint, tmp_path, monkeypatch, entry, fragment):
    monkeypatch.setattr(evaluation, "run_greedy_episodes", lambda *a: pytest.fail("played before checking"))
    with pytest.raises(ConfigError, match=fragment):
        evaluate_checkpoint(checkpoint, tmp_path, f"eval.compare=[{entry}]")


def test_success_rate_counts_returns_at_or_above_the_threshold():
    assert success_rate([100.0, 475.0, 500.0, 474.9], 475.0) == 0.5
    assert success_rate([1.0], None) is None


def test_compare_table_without_a_threshold_says_so():
    policy = {
        "policy": "p",
        "seeds": [1, 2],
        "mean": 1.0,
        "std": 0.5,
        "median": 1.0,
        "min": 0.5,
        "max": 1.5,
        "success_rate": None,
    }
    table = format_compare_table([policy], None, "Pendulum-v1")
    assert "no threshold" in table and "| p | 1.00 ± 0.50 | 1.00 | 0.50 | 1.50 | n/a |" in table


def test_video_films_the_first_and_the_best_episode(checkpoint, tmp_path):
    report = evaluate_checkpoint(checkpoint, tmp_path, "eval.episodes=3", "eval.video=true")
    best = max(range(3), key=lambda i: report["returns"][i])
    filmed = sorted({0, best})
    assert [video["episode"] for video in report["videos"]] == filmed
    for video in report["videos"]:
        frames = list(iio.imiter(video["path"]))
        assert len(frames) == report["lengths"][video["episode"]] + 1  # the reset frame, then one per step
        assert video["return"] == report["returns"][video["episode"]]  # greedy: the replay is the same episode
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [f"episode_{i:03d}.mp4" for i in filmed]


def test_video_episodes_beyond_the_episodes_played_are_refused(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "run_greedy_episodes", lambda *a: pytest.fail("played before checking"))
    with pytest.raises(ConfigError, match=r"eval.video_episodes=\[5\]"):
        evaluate_checkpoint(checkpoint, tmp_path, "eval.episodes=3", "eval.video=true", "eval.video_episodes=[5]")
    # the checkpoint's eval.episodes (2, from its training config) applies when the command line sets none
    with pytest.raises(ConfigError, match=r"eval.video_episodes=\[3\].*\(eval.episodes=2\)"):
        evaluate_checkpoint(checkpoint, tmp_path, "eval.video=true", "eval.video_episodes=[3]")


# ----------------------------------------------------------------------------- the evaluation cap
@pytest.fixture
def fail_if_hung():
    """Fail a test that runs longer than ``seconds`` (an evaluation that never ends) instead of hanging the suite."""
    import signal

    def hung(signum, frame):
        raise TimeoutError("still running: an episode without a step cap never ends")

    previous = signal.signal(signal.SIGALRM, hung)
    yield lambda seconds: signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


# CliffWalking-v1 has no time limit; the greedy policy of a table trained one step never reaches the goal
# (all-zero rows send it up into the top row, or it walks off the cliff back to the start).
CLIFF_RUN = [
    "agent=tabular_q",
    "env=gym",
    "env.id=CliffWalking-v1",
    "total_steps=2",
    "eval.every=1",
    "eval.episodes=2",
    "save_every=1000",
    "device=cpu",
]


def test_training_evaluation_of_an_env_without_time_limit_ends_at_the_cap(tmp_path, fail_if_hung):
    fail_if_hung(60)
    result = train(compose_cfg(*CLIFF_RUN, "eval.max_episode_steps=40"), tmp_path)
    assert result["steps"] == 2 and [step for step, _ in result["eval_history"]] == [1, 2]
    assert result["final_eval_truncated_episodes"] == 2  # both capped episodes count as truncated
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["final_eval_truncated_episodes"] == 2


def test_evaluate_mode_caps_episodes_and_reports_them_truncated(tmp_path, fail_if_hung):
    fail_if_hung(60)
    train(compose_cfg(*CLIFF_RUN, "eval.max_episode_steps=40"), tmp_path / "run")
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    (tmp_path / "eval").mkdir()
    report = evaluate_checkpoint(checkpoint, tmp_path / "eval", "eval.max_episode_steps=25", "eval.compare=[random]")
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved["lengths"] == [25, 25] and saved["truncated"] == [True, True]
    assert saved["truncated_episodes"] == report["truncated_episodes"] == 2
    assert saved["episode_step_limit"] == 25
    assert all(length <= 25 for length in saved["compare"][0]["lengths"])  # rivals play under the same cap


def test_the_env_own_time_limit_comes_first():
    from rlrun.envs import make_eval_env

    env = make_eval_env(compose_cfg("env.max_episode_steps=30").env, max_episode_steps=5)
    agent = evaluation.build_agent(compose_cfg("agent=random"), env.observation_space, env.action_space, "cpu")
    episodes = evaluation.run_greedy_episodes(agent, env, [0, 1, 2])
    assert max(episodes["lengths"]) > 5  # CartPole with random actions lasts 10-40 steps, under its limit of 30
    assert all(length <= 30 for length in episodes["lengths"])


def test_video_episodes_end_at_the_cap(tmp_path, fail_if_hung):
    from rlrun.agents import TabularQAgent
    from rlrun.config import TabularQConfig
    from rlrun.schedules import ConstantSchedule
    from rlrun.video import make_render_env, play_and_capture

    fail_if_hung(60)
    env = make_render_env(compose_cfg("env=gym", "env.id=CliffWalking-v1").env, max_episode_steps=12)
    agent = TabularQAgent(TabularQConfig(), 48, 4, ConstantSchedule(0.0), seed=0)  # all zeros: greedy goes up
    episode = play_and_capture(agent, env, seed=0)
    env.close()
    assert episode.length == 12 and len(episode.frames) == 13
