"""The docs site builds with --strict, and its tables of measured figures come from readable result files.

benchmarks/result_files.py renders every ``<!-- results-table VIEW: NAMES -->`` directive of docs/ (as a mkdocs
hook) and README.md's one block from results/*.json; these tests hold each piece of that chain to what it promises.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import result_files  # noqa: E402

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
MKDOCS = Path(sys.executable).parent / "mkdocs"
QUIET = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's banner about its successor


@pytest.mark.parametrize("kind, path", result_files.all_result_files(), ids=lambda item: getattr(item, "name", item))
def test_every_committed_result_file_is_readable_and_complete(kind, path):
    document = result_files.load(kind, path.stem)  # raises on invalid JSON, a missing field, a bad row
    assert document["provenance"].startswith(("measured", "transcribed"))
    if kind == "learning":
        assert path.stem.startswith(f"{document['env']}_{document['agent']}")


def test_there_are_result_files_of_both_kinds():
    kinds = {kind for kind, _ in result_files.all_result_files()}
    assert kinds == {"learning", "performance"}


def test_every_table_on_a_page_names_result_files_that_exist():
    asked = [
        (page.name, view, name)
        for page in PAGES
        for view, names in result_files.directives(page.read_text())
        for name in names
    ]
    assert len(asked) >= 20, "the pages' results-table directives were not found"
    missing = [
        (page, view, name)
        for page, view, name in asked
        if not (result_files.RESULTS / result_files.VIEW_KIND[view] / f"{name}.json").is_file()
    ]
    assert not missing, f"tables naming a pair or benchmark with no results file: {missing}"


def test_every_tuned_pair_with_a_learning_result_is_in_the_learning_page_and_readme():
    learning_page = (REPO / "docs" / "learning.md").read_text()
    on_page = {name for _, names in result_files.directives(learning_page) for name in names}
    on_readme = {name for _, names in result_files.directives((REPO / "README.md").read_text()) for name in names}
    files = {path.stem for kind, path in result_files.all_result_files() if kind == "learning"}
    assert files <= on_page, f"learning results no table shows: {files - on_page}"
    tuned = {path.stem for path in (REPO / "conf" / "tuned").glob("*.yaml")}
    assert on_readme <= tuned, "README's table lists only pairs that have a tuned file"


def test_readme_table_is_the_rendering_of_the_result_files():
    text = (REPO / "README.md").read_text()
    assert "<!-- end results-table -->" in text
    assert result_files.render_readme(text) == text, (
        "README.md's results table differs from results/: run python benchmarks/result_files.py --readme"
    )


def test_a_directive_naming_no_result_file_is_an_error_naming_it():
    with pytest.raises(result_files.ResultFileError, match="no result file results/learning/cartpole_nosuch.json"):
        result_files.on_page_markdown("<!-- results-table learning-seeds: cartpole_nosuch -->")


def test_a_result_file_missing_a_field_is_refused(tmp_path):
    document = json.loads((result_files.RESULTS / "learning" / "cartpole_dqn.json").read_text())
    del document["machine"]
    with pytest.raises(result_files.ResultFileError, match="missing required field.*machine"):
        result_files.check(document, "learning", "cartpole_dqn.json")
    document = json.loads((result_files.RESULTS / "learning" / "cartpole_dqn.json").read_text())
    del document["seeds"][0]["final_eval"]
    with pytest.raises(result_files.ResultFileError, match="misses final_eval"):
        result_files.check(document, "learning", "cartpole_dqn.json")


def test_rendered_counts_come_from_the_seed_rows():
    document = result_files.load("learning", "lunarlander_per_dqn")
    solved, final, held_out, seeds = result_files.counts(document)
    threshold = document["threshold"]
    assert seeds == len(document["seeds"])
    assert final == sum(row["final_eval"] >= threshold for row in document["seeds"])
    table = result_files.render("learning-compact", "lunarlander_per_dqn")
    assert f"| {solved}/{seeds} | {final}/{seeds} | {held_out}/{seeds} |" in table


def test_directives_inside_code_blocks_stay_examples():
    page = "```\n<!-- results-table learning-seeds: cartpole_nosuch -->\n```\n"
    assert result_files.on_page_markdown(page) == page
    assert result_files.directives(page) == []


def test_mkdocs_builds_the_site_with_strict(tmp_path):
    if not MKDOCS.exists():
        pytest.fail('mkdocs is missing: make install installs the docs extra (pip install -e ".[docs]")')
    site = tmp_path / "site"
    result = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=QUIET,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (site / "index.html").is_file() and (site / "api" / "agents" / "index.html").is_file()
    learning = (site / "learning" / "index.html").read_text()
    assert "results-table" not in learning and "results/learning/lunarlander_per_dqn.json" in learning
    assert "act_greedy" in (site / "api" / "agents" / "index.html").read_text()  # mkdocstrings read the protocol


def test_mkdocs_strict_fails_on_a_broken_link(tmp_path):
    copy = tmp_path / "repo"
    for name in ("docs", "results", "benchmarks"):
        shutil.copytree(REPO / name, copy / name)
    shutil.copy(REPO / "mkdocs.yml", copy / "mkdocs.yml")
    shutil.copytree(REPO / "rlrun", copy / "rlrun")
    (copy / "docs" / "design.md").write_text(
        (copy / "docs" / "design.md").read_text() + "\nSee [a page](no-such-page.md).\n"
    )
    result = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
        env=QUIET,
    )
    assert result.returncode != 0 and "no-such-page.md" in result.stderr


def test_an_unreadable_result_file_is_an_error_naming_it(tmp_path):
    broken = tmp_path / "cartpole_dqn.json"
    broken.write_text('{"schema": "rlrun.learning/1", "seeds": [')
    with pytest.raises(result_files.ResultFileError, match="cartpole_dqn.json is not valid JSON"):
        result_files.load_path(broken, "learning")


def test_the_configuration_page_names_every_tuned_file():
    page = (REPO / "docs" / "configuration.md").read_text()
    page = page.replace(
        "cartpole_{dqn,double_dqn,dueling_dqn,per_dqn,reinforce}",
        " ".join(f"cartpole_{a}" for a in ("dqn", "double_dqn", "dueling_dqn", "per_dqn", "reinforce")),
    )
    page = page.replace(
        "lunarlander_{dqn,double_dqn,dueling_dqn,per_dqn,reinforce}",
        " ".join(f"lunarlander_{a}" for a in ("dqn", "double_dqn", "dueling_dqn", "per_dqn", "reinforce")),
    )
    missing = [
        path.stem
        for path in sorted((REPO / "conf" / "tuned").glob("*.yaml"))
        if f"{path.stem}`" not in page and f"{path.stem} " not in page
    ]
    assert not missing, f"tuned files docs/configuration.md does not list: {missing}"
