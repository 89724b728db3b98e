"""benchmarks/population.py: the joblib-vs-population table and its result file, from sweep figures."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import population  # noqa: E402
import result_files  # noqa: E402


def sweep(launcher, wall, solved, final_solved, final_mean):
    return {
        "env": "cartpole",
        "launcher": launcher,
        "command": f"rlrun -m hydra/launcher={launcher}",
        "runs": 8,
        "wall_seconds": wall,
        "env_steps": 8 * 50_000,
        "threshold": 475.0,
        "solved": solved,
        "final_solved": final_solved,
        "final_mean": final_mean,
    }


def test_each_sweep_gets_its_wall_time_against_the_joblib_sweep_of_its_env(tmp_path):
    results = [sweep("joblib", 400.0, 8, 7, 480.0), sweep("population", 160.0, 8, 8, 490.5)]
    joblib_row, population_row = population.rows(results)
    assert joblib_row[-1] == "1.00x" and population_row[-1] == "0.40x"
    assert population_row[4] == "2,500" and population_row[5:8] == ["8/8", "8/8", "490.5"]
    assert population.table(results).splitlines()[0].startswith("| env | launcher | seeds | wall s |")

    path = tmp_path / "population.json"
    args = argparse.Namespace(steps=None, note=["run alone"])
    population.write_result(path, results, args)
    written = result_files.load_path(path, "performance")  # validates the schema
    assert written["benchmark"] == "population" and written["notes"] == ["run alone"]
    assert written["tables"][0]["rows"] == population.rows(results)
    assert "tuned budgets" in written["tables"][0]["title"]
