"""The result files the benchmarks write (results/), and the docs tables rendered from them.

Measured figures live in JSON files committed under ``results/``: ``results/learning/<name>.json`` from
``benchmarks/learning.py`` and ``results/performance/<name>.json`` from ``benchmarks/throughput.py`` and
``benchmarks/replay.py``. Each file says which command, commit, date and machine produced it, and how it got there
(``provenance``). The docs never retype a figure: a page holds a directive such as

    <!-- results-table learning-seeds: cartpole_dqn cartpole_reinforce -->

and this module, loaded by mkdocs as a hook (``hooks:`` in mkdocs.yml), replaces it with the table rendered from
those files at build time. A directive naming a file that does not exist, or a file that misses a required field,
stops the build. README.md is not built by mkdocs, so its one table sits between the same directive and
``<!-- end results-table -->`` and ``python benchmarks/result_files.py --readme`` rewrites it; a test holds the two
equal. The schema is described on docs/contributing.md ("Result files").
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
KINDS = ("learning", "performance")
# Fields every result file has; learning files also have LEARNING_FIELDS, each seed row SEED_FIELDS.
COMMON_FIELDS = ("schema", "command", "commit", "date", "machine", "provenance")
LEARNING_FIELDS = ("env", "agent", "env_id", "threshold", "total_steps", "seeds")
SEED_FIELDS = ("seed", "solved_at_step", "best_eval", "final_eval")
PERFORMANCE_FIELDS = ("benchmark", "tables")
SCHEMAS = {"learning": "rlrun.learning/1", "performance": "rlrun.performance/1"}
DIRECTIVE = re.compile(r"<!-- results-table (?P<view>[\w-]+): (?P<names>[^>]*?) -->")
README_BLOCK = re.compile(
    r"(?P<directive><!-- results-table (?P<view>[\w-]+): (?P<names>[^>]*?) -->)\n.*?"
    r"<!-- end results-table -->",
    re.S,
)
VIEW_KIND = {
    "learning-summary": "learning",
    "learning-seeds": "learning",
    "learning-heldout": "learning",
    "learning-compact": "learning",
    "performance": "performance",
}


class ResultFileError(ValueError):
    """A result file that cannot be read, misses a field, or a directive that names no file."""


# ----------------------------------------------------------------------------- writing (the benchmarks)


def machine() -> dict:
    """The CPU model and core count of this machine, as the result files record them."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version()}


def git_commit() -> str | None:
    """The checkout's commit, with ``+dirty`` when tracked files differ from it; None outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def provenance_fields(command: str) -> dict:
    """The fields that say where a freshly measured result comes from."""
    return {
        "command": command,
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "provenance": "measured: written by the command above",
    }


def write(path: Path, document: dict) -> None:
    """Check ``document`` against the schema of its kind, then write it (indented, so diffs read well)."""
    kind = "learning" if document.get("schema") == SCHEMAS["learning"] else "performance"
    check(document, kind, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path}")


# ----------------------------------------------------------------------------- reading and checking


def check(document: dict, kind: str, where: str) -> None:
    """Raise ResultFileError naming the first missing or wrong field."""
    if document.get("schema") != SCHEMAS[kind]:
        raise ResultFileError(f"{where}: 'schema' is {document.get('schema')!r}, expected {SCHEMAS[kind]!r}")
    required = COMMON_FIELDS + (LEARNING_FIELDS if kind == "learning" else PERFORMANCE_FIELDS)
    missing = [name for name in required if name not in document]
    if missing:
        raise ResultFileError(f"{where}: missing required field(s) {', '.join(missing)} (schema {SCHEMAS[kind]})")
    if document["commit"] is None and not document.get("commit_note"):
        raise ResultFileError(f"{where}: 'commit' is null without a 'commit_note' saying why")
    if not isinstance(document["machine"], dict) or not {"cpu", "cores"} <= set(document["machine"]):
        raise ResultFileError(f"{where}: 'machine' must be an object with 'cpu' and 'cores'")
    if kind == "learning":
        if not document["seeds"]:
            raise ResultFileError(f"{where}: 'seeds' is empty")
        for row in document["seeds"]:
            missing = [name for name in SEED_FIELDS if name not in row]
            if missing:
                raise ResultFileError(f"{where}: seed row {row.get('seed')!r} misses {', '.join(missing)}")
    else:
        for table in document["tables"]:
            if not {"title", "columns", "rows"} <= set(table):
                raise ResultFileError(f"{where}: each table needs 'title', 'columns' and 'rows'")
            bad = [row for row in table["rows"] if len(row) != len(table["columns"])]
            if bad:
                raise ResultFileError(
                    f"{where}: table {table['title']!r} has a row of {len(bad[0])} cells "
                    f"for {len(table['columns'])} columns"
                )


def load(kind: str, name: str) -> dict:
    """``results/<kind>/<name>.json``, checked."""
    path = RESULTS / kind / f"{name}.json"
    if not path.is_file():
        existing = sorted(p.stem for p in (RESULTS / kind).glob("*.json"))
        raise ResultFileError(f"no result file {path.relative_to(ROOT)}; {kind} results are: {', '.join(existing)}")
    return load_path(path, kind)


def load_path(path: Path, kind: str) -> dict:
    """A result file anywhere, checked against the schema of ``kind``."""
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ResultFileError(f"{where} is not valid JSON: {error}") from None
    check(document, kind, where)
    return document


def all_result_files() -> list[tuple[str, Path]]:
    return [(kind, path) for kind in KINDS for path in sorted((RESULTS / kind).glob("*.json"))]


# ----------------------------------------------------------------------------- rendering


def thousands(steps: int) -> str:
    """Env steps as the tables show them: 45000 -> 45k, 1000000 -> 1M."""
    if steps >= 1_000_000 and steps % 1_000_000 == 0:
        return f"{steps // 1_000_000}M"
    return f"{steps / 1000:g}k" if steps >= 1000 else str(steps)


def number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 10:
        return f"{int(value):,}"  # 475.0 and 475 read alike, whichever way the file stored it
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown_table(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(number(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def source_line(name: str, kind: str, document: dict) -> str:
    """Where a table comes from: its file, command, commit, date, machine and provenance."""
    commit = document["commit"][:10] if document["commit"] else f"unknown ({document['commit_note']})"
    machine_text = f"{document['machine']['cpu']}, {document['machine']['cores']} cores"
    return (
        f"`results/{kind}/{name}.json`: `{document['command']}`; commit {commit}; {document['date']}; "
        f"{machine_text}; {document['provenance']}"
    )


def counts(document: dict) -> tuple[int, int, int | None, int]:
    """Seeds solved (some evaluation at the threshold), final eval at it, final held-out at it (None: not run)."""
    threshold, rows = document["threshold"], document["seeds"]
    solved = sum(row["solved_at_step"] is not None for row in rows)
    final = sum(row["final_eval"] >= threshold for row in rows)
    held = [row.get("heldout_final") for row in rows]
    held_out = None if any(value is None for value in held) else sum(value >= threshold for value in held)
    return solved, final, held_out, len(rows)


def seed_cell(row: dict) -> str:
    """env steps (wall seconds) to the threshold · best eval · final eval."""
    if row["solved_at_step"] is None:
        reach = "-"
    else:
        seconds = row.get("solved_at_seconds")
        reach = thousands(row["solved_at_step"]) + (f" ({seconds:,.0f} s)" if seconds is not None else "")
    return f"{reach} · {row['best_eval']:.1f} · {row['final_eval']:.1f}"


def render_learning(view: str, names: list[str]) -> str:
    documents = {name: load("learning", name) for name in names}
    notes = []
    if view in ("learning-summary", "learning-compact"):
        columns = (
            ["pair", "budget", "threshold", "seeds", "solved", "final eval", "final, held-out"]
            if view == "learning-compact"
            else [
                "result file",
                "tuned file",
                "budget",
                "threshold",
                "seeds",
                "solved: some eval >= threshold",
                "final eval >= threshold",
                "final policy, held-out >= threshold",
                "target (solved; final)",
                "command",
            ]
        )
        rows = []
        for name, doc in documents.items():
            solved, final, held_out, seeds = counts(doc)
            first, last = doc["seeds"][0]["seed"], doc["seeds"][-1]["seed"]
            seed_text = f"{first}-{last}" if seeds > 1 else str(first)
            held_text = "-" if held_out is None else f"{held_out}/{seeds}"
            pair = f"{doc['env']}_{doc['agent']}"
            if view == "learning-compact":
                rows.append(
                    [
                        f"`{pair}`",
                        thousands(doc["total_steps"]),
                        number(doc["threshold"]),
                        seed_text,
                        f"{solved}/{seeds}",
                        f"{final}/{seeds}",
                        held_text,
                    ]
                )
            else:
                rows.append(
                    [
                        f"`{name}`",
                        f"`{doc.get('tuned_file', '-')}`",
                        thousands(doc["total_steps"]),
                        number(doc["threshold"]),
                        seed_text,
                        f"{solved}/{seeds}",
                        f"{final}/{seeds}",
                        held_text,
                        doc.get("target", "-"),
                        f"`{doc['command']}`",
                    ]
                )
        table = markdown_table(columns, rows)
    elif view == "learning-seeds":
        seeds = sorted({row["seed"] for doc in documents.values() for row in doc["seeds"]})
        rows = []
        for seed in seeds:
            cells = [seed]
            for doc in documents.values():
                row = next((r for r in doc["seeds"] if r["seed"] == seed), None)
                cells.append(seed_cell(row) if row else "not measured")
            rows.append(cells)
        table = markdown_table(["seed", *[f"`{name}`" for name in names]], rows)
    elif view == "learning-heldout":
        ((name, doc),) = documents.items()
        columns = [
            "seed",
            f"first eval >= {doc['threshold']:g}",
            "best eval",
            "final eval",
            "`best.pt`, held-out",
            "final policy, held-out",
            "final policy's episodes cut at the time limit",
        ]
        rows = [
            [
                row["seed"],
                seed_cell(row).split(" · ")[0],
                row["best_eval"],
                row["final_eval"],
                row.get("heldout_best"),
                row.get("heldout_final"),
                None
                if row.get("heldout_final_truncated_share") is None
                else f"{100 * row['heldout_final_truncated_share']:.0f}%",
            ]
            for row in doc["seeds"]
        ]
        table = markdown_table(columns, rows)
    else:
        raise ResultFileError(f"unknown results-table view {view!r}; views are: {', '.join(VIEW_KIND)}")
    if view != "learning-compact":
        notes = [source_line(name, "learning", doc) for name, doc in documents.items()]
        if view != "learning-summary":  # each note once, however many of the files carry it
            notes += list(dict.fromkeys(note for doc in documents.values() for note in doc.get("notes", [])))
    return table + ("\n\n" + "\n".join(f"- {line}" for line in notes) if notes else "")


def render_performance(names: list[str]) -> str:
    parts = []
    for name in names:
        doc = load("performance", name)
        for table in doc["tables"]:
            parts.append(f"**{table['title']}**\n\n" + markdown_table(table["columns"], table["rows"]))
        parts.append(f"- {source_line(name, 'performance', doc)}")
        parts += [f"- {note}" for note in doc.get("notes", [])]
    return "\n\n".join(parts)


def render(view: str, names_text: str) -> str:
    names = names_text.split()
    if view not in VIEW_KIND:
        raise ResultFileError(f"unknown results-table view {view!r}; views are: {', '.join(VIEW_KIND)}")
    return render_performance(names) if view == "performance" else render_learning(view, names)


FENCE = re.compile(r"(^```.*?^```[^\n]*$)", re.S | re.M)


def outside_code(text: str, substitute) -> str:
    """``substitute`` applied to the parts of a Markdown text outside fenced code blocks (examples stay examples)."""
    parts = FENCE.split(text)
    return "".join(part if index % 2 else substitute(part) for index, part in enumerate(parts))


def directives(text: str) -> list[tuple[str, list[str]]]:
    """Every (view, [result file names]) a page's directives ask for, outside code blocks."""
    found = []
    outside_code(
        text, lambda part: found.extend((m["view"], m["names"].split()) for m in DIRECTIVE.finditer(part)) or part
    )
    return found


def render_readme(text: str) -> str:
    """README.md with each results block rendered afresh from the result files."""
    return README_BLOCK.sub(
        lambda m: f"{m['directive']}\n{render(m['view'], m['names'])}\n<!-- end results-table -->", text
    )


# ----------------------------------------------------------------------------- the mkdocs hook


def on_page_markdown(markdown: str, **kwargs) -> str:
    """mkdocs hook: each directive becomes its table; a bad directive or result file stops the build."""
    return outside_code(markdown, lambda part: DIRECTIVE.sub(lambda m: render(m["view"], m["names"]), part))


if __name__ == "__main__":
    if sys.argv[1:] != ["--readme"]:
        sys.exit("usage: python benchmarks/result_files.py --readme   (re-renders README.md's results table)")
    readme = ROOT / "README.md"
    readme.write_text(render_readme(readme.read_text()))
    print(f"rendered the results table of {readme}")
