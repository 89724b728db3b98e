"""benchmarks/learning.py: time-to-threshold and the solved counts from results.json files."""

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import learning  # noqa: E402
import result_files  # noqa: E402


def results(history, seconds, final):
    return {
        "eval_history": history,
        "eval_wall_seconds": seconds,
        "best_eval_return": max(m for _, m in history),
        "final_eval_return": final,
        "solved_at_return": 475.0,
    }


def test_first_reach_is_the_first_evaluation_at_or_above_the_threshold():
    run = results([[5000, 100.0], [10000, 475.0], [15000, 500.0]], [3.0, 7.5, 11.0], 500.0)
    assert learning.first_reach(run, 475.0) == (10000, 7.5)
    assert learning.first_reach(run, 501.0) == (None, None)


def test_table_counts_solved_and_final_per_seed():
    by_seed = {
        0: results([[5000, 480.0], [10000, 200.0]], [4.0, 9.0], 200.0),  # reached, then fell
        1: results([[5000, 100.0], [10000, 500.0]], [4.0, 9.0], 500.0),
        # seed 2's job failed: no results
    }
    lines = learning.table(by_seed, [0, 1, 2], 475.0)
    assert lines[-1] == "solved 2/3, final 1/3"
    assert "| 0 | 5,000 | 4 | 480.0 | 200.0 |" in lines
    assert "| 1 | 10,000 | 9 | 500.0 | 500.0 |" in lines
    assert any(line.startswith("| 2 | (job failed") for line in lines)


def test_table_shows_held_out_scores_and_the_share_cut_by_the_time_limit():
    by_seed = {
        0: {
            **results([[5000, 480.0]], [4.0], 480.0),
            "heldout": {
                "best": {"mean": 470.0, "truncated_share": 0.0},
                "last": {"mean": 476.5, "truncated_share": 0.03},
            },
        }
    }
    lines = learning.table(by_seed, [0], 475.0)
    assert "| 0 | 5,000 | 4 | 480.0 | 480.0 | 470.0 | 476.5 | 3% |" in lines
    assert lines[-1] == "solved 1/1, final 1/1, final policy held-out >= threshold 1/1"


def test_the_seeds_best_and_final_returns_get_their_iqm_and_mean_with_intervals():
    by_seed = {
        seed: results([[5000, best]], [4.0], final)
        for seed, (best, final) in enumerate([(10.0, 1.0), (20.0, 2.0), (30.0, 3.0), (40.0, 400.0)])
    }
    by_seed[0]["heldout"] = {"last": {"mean": 5.0, "truncated_share": 0.0}}
    lines = learning.interval_lines(by_seed)
    assert lines[0] == "over 4 seeds, 95% stratified bootstrap CI:"
    # 4 seeds: the IQM drops one at each end; final: mean of 2 and 3 = 2.5, while the mean is pulled to 101.5
    assert lines[1].startswith("best eval: IQM 25.0 [") and ", mean 25.0 [" in lines[1]
    assert lines[2].startswith("final eval: IQM 2.5 [") and ", mean 101.5 [" in lines[2]
    assert lines[3] == "final policy, held-out: IQM 5.0 [5.0, 5.0], mean 5.0 [5.0, 5.0]", "one seed measured"
    assert learning.interval_lines({}) == []


def test_runs_seeds_through_the_sweep_and_reads_their_results(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    live = tmp_path / "live.json"
    code = learning.main(
        [
            "--seeds",
            "2",
            "--first-seed",
            "3",
            "--jobs",
            "1",
            "--sweep-dir",
            str(sweep),
            "--heldout",
            "3",
            "--out",
            str(live),
            "total_steps=400",
            "agent.learning_starts=100",
            "agent.batch_size=32",
            "eval.every=200",
            "eval.episodes=2",
            "save_every=400",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| 3 |" in out and "| 4 |" in out and "solved " in out and "/2, final " in out
    steps = [json.loads(path.read_text())["steps"] for path in sweep.glob("*/results.json")]
    assert steps == [400, 400]  # one finished job per seed
    # both checkpoints of each seed were re-evaluated on 3 held-out episodes, none a periodic evaluation played
    reports = sorted(sweep.glob("*/heldout_*/eval.json"))
    assert [path.parent.name for path in reports] == ["heldout_best", "heldout_last"] * 2
    for path in reports:
        report = json.loads(path.read_text())
        assert report["episodes"] == 3 and report["episode_seeds"] == "heldout"
        assert not set(report["seeds"]) & set(learning_eval_seeds(report["seed"]))
    assert "final policy held-out >= threshold" in out
    assert "final eval: IQM " in out and "over 2 seeds, 95% stratified bootstrap CI:" in out

    # the result file: what produced it, one row per seed; a re-tabulation of the folder gives the same rows
    written = result_files.load_path(live, "learning")
    assert written["command"].startswith("python benchmarks/learning.py total_steps=400")
    assert "--seeds 2 --first-seed 3" in written["command"] and written["total_steps"] == 400
    assert written["machine"]["cores"] and written["provenance"].startswith("measured")
    assert [row["seed"] for row in written["seeds"]] == [3, 4]
    assert all(row["heldout_episodes"] == 3 for row in written["seeds"])
    retabulated = tmp_path / "from_sweep.json"
    before = sorted(sweep.rglob("*"))
    assert learning.main(["--from-sweep", str(sweep), "--out", str(retabulated)]) == 0
    assert sorted(sweep.rglob("*")) == before, "--from-sweep trains and evaluates nothing"
    again = result_files.load_path(retabulated, "learning")
    assert again["seeds"] == written["seeds"] and again["command"] == written["command"]
    assert "--from-sweep" in again["provenance"] and again["commit"] is None and again["commit_note"]

    # two folders of the same config on disjoint seeds (seed 3 in one sweep, seed 4 in a later one) are one table
    halves = []
    for job in sorted(path.parent for path in sweep.glob("*/results.json")):
        half = tmp_path / f"half_{len(halves)}"
        half.mkdir()
        shutil.copy(sweep / "multirun.yaml", half / "multirun.yaml")
        shutil.copytree(job, half / job.name)
        halves.append(half)
    joined = tmp_path / "joined.json"
    assert learning.main(["--from-sweep", *map(str, halves), "--out", str(joined)]) == 0
    together = result_files.load_path(joined, "learning")
    assert together["seeds"] == written["seeds"]
    assert together["command"].count("python benchmarks/learning.py") == 2, "each folder's command is recorded"
    # a job saved before an agent key existed (it trained with the key's default) joins; a folder without
    # held-out evaluations (a sweep stopped before them) gets them
    older = next(halves[0].glob("*/.hydra/config.yaml"))
    assert "  network: auto\n" in older.read_text()
    older.write_text(older.read_text().replace("  network: auto\n", ""))
    for held in halves[0].glob("*/heldout_*"):
        shutil.rmtree(held)
    assert (
        learning.main(["--from-sweep", *map(str, halves), "--jobs", "1", "--heldout", "3", "--out", str(joined)]) == 0
    )
    assert len(list(halves[0].glob("*/heldout_*/eval.json"))) == 2
    assert result_files.load_path(joined, "learning")["seeds"] == written["seeds"]
    # a folder whose jobs trained something else, or the same seeds again, is refused, naming why
    other = halves[1] / next(halves[1].glob("*/results.json")).parent.name / ".hydra" / "config.yaml"
    other.write_text(other.read_text().replace("total_steps: 400", "total_steps: 500"))
    assert learning.main(["--from-sweep", *map(str, halves)]) == 2
    assert "keys total_steps differ" in capsys.readouterr().err
    assert learning.main(["--from-sweep", str(halves[0]), str(halves[0])]) == 2
    assert "seeds [3] are in an earlier folder too" in capsys.readouterr().err


def learning_eval_seeds(seed):
    from rlrun.evaluation import eval_seeds

    return eval_seeds(seed, 1000)


def test_rejects_a_seed_override():
    with pytest.raises(SystemExit):
        learning.parse_args(["seed=3"])
