"""A self-contained report of a run directory (HTML or Markdown): summary, evaluation, iterations, plot, config."""

from __future__ import annotations

import base64
import html
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mstar_ray.telemetry.profile import run_stages, stage_overhead

Table = tuple[list[str], list[list[str]]]  # (header, rows of cells)
PROFILE_NOTE = (
    "Wall seconds of each phase, the seconds each actor spent working in it, and the part of it in which no actor "
    "worked (Ray scheduling and transfers, actors starting, the driver's own work). The iterations are added up."
)
EXPECTED = ("config.yaml", "metrics.jsonl", "summary.json", "data_report.json", "dynamics.png", "checkpoints")
ITERATION_COLUMNS = (  # (header, metrics key, number format); {k} is the validation K
    ("iteration", "iteration", "g"),
    ("weights version", "weights_version", "g"),
    ("temperature", "temperature", ".2f"),
    ("prompts", "prompts", "g"),
    ("sample accuracy", "sample_accuracy", ".3f"),
    ("selected", "selected", "g"),
    ("selected sound", "selected_process_correct", ".3f"),
    ("random-k sound", "random_k_process_correct", ".3f"),
    ("flaw rate", "flaw_rate", ".3f"),
    ("train loss", "train_loss", ".4f"),
    ("val greedy", "val_greedy_accuracy", ".3f"),
    ("val strict", "val_strict_accuracy", ".3f"),
    ("val Pass@{k}", "val_pass_at_k", ".3f"),
    ("val Reward-Pass@2", "val_reward_pass_at_2", ".3f"),
    ("val random-2", "val_random_pass_at_2", ".3f"),
)
# Shown only when some record has them: the process figures exist where the data has ground truth
GROUND_TRUTH_KEYS = ("selected_process_correct", "random_k_process_correct", "flaw_rate", "val_strict_accuracy")


@dataclass(frozen=True)
class Section:
    """One titled part of the report: a table, a note, an image and/or preformatted text."""

    title: str
    table: Table | None = None
    note: str = ""
    image: Path | None = None
    pre: str | None = None


def _fmt(value: Any, spec: str = ".3f") -> str:
    """Format a cell: floats with spec, missing values as a dash."""
    if value is None:
        return "–"
    return format(value, spec) if isinstance(value, float) else str(value)


def _results_rows(summary: dict) -> Table | None:
    """The test evaluation before and after self-evolution, or None if either is missing."""
    pre, final = summary.get("pre_evolved"), summary.get("final")
    if not pre or not final:
        return None
    k = final["k"]
    keys = [("greedy accuracy", "greedy_accuracy"), (f"Pass@{k}", "pass_at_k")]
    keys.append((f"Pass@{k} - greedy", "pass_at_k_minus_greedy"))
    optional = [("strict accuracy", "strict_accuracy"), ("flaw rate", "flaw_rate")]
    optional += [("Reward-Pass@2", "reward_pass_at_2"), ("PRM pairwise accuracy", "prm_pairwise_accuracy")]
    keys += [(label, key) for label, key in optional if pre.get(key) is not None and final.get(key) is not None]
    rows = [[label, f"{pre[key]:.3f}", f"{final[key]:.3f}", f"{final[key] - pre[key]:+.3f}"] for label, key in keys]
    return ["test split", "pre-evolved", "M-STaR", "change"], rows


def _md_table(table: Table) -> str:
    """A Markdown table, the first column left-aligned and the others right-aligned."""
    header, rows = table
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows])


def results_table(summary: dict) -> str:
    """The pre-evolved vs final test evaluation as a Markdown table ("" if the run has none)."""
    rows = _results_rows(summary)
    return _md_table(rows) if rows else ""


def _iteration_rows(iters: Sequence[dict]) -> Table:
    """One row per iteration record (0 is the pre-evolved model), with the seconds of all its phases."""
    ks = [r["val_k"] for r in iters if r.get("val_k") is not None]
    absent = {key for key in GROUND_TRUTH_KEYS if all(r.get(key) is None for r in iters)}
    columns = [c for c in ITERATION_COLUMNS if c[1] not in absent]
    rows = []
    for r in iters:
        seconds = r.get("seconds")
        total = sum(seconds.values()) if isinstance(seconds, dict) else seconds
        rows.append([_fmt(r.get(key), spec) for _, key, spec in columns] + [_fmt(total, ".1f")])
    header = [h.format(k=ks[-1] if ks else "K") for h, _, _ in columns]
    return header + ["seconds"], rows


def _search_rows(searches: Sequence[dict]) -> Table:
    """One row per temperature search: the chosen temperature and the criterion's value there."""
    rows = []
    for s in searches:
        criterion, chosen = s.get("criterion", "pass_at_k"), s.get("chosen")
        at_chosen = [p.get(criterion) for p in s.get("curve") or [] if p.get("temperature") == chosen]
        rows.append([_fmt(s.get("iteration")), _fmt(chosen, ".2f"), criterion, _fmt(next(iter(at_chosen), None))])
    return ["iteration", "chosen temperature", "criterion", "value at chosen"], rows


def _profile_rows(records: Sequence[dict], summary: dict | None) -> Table:
    """Where the run's time went: each stage's phases, with every actor's compute and the time no actor worked."""
    rows = []
    for name, stage in run_stages(records, summary).items():
        rows.append([name, _fmt(stage["wall"], ".1f"), "", _fmt(stage_overhead(stage), ".1f")])
        for phase, p in stage["phases"].items():
            if p["wall"] < 0.05:
                continue
            compute = ", ".join(f"{a} {s:.1f}" for a, s in sorted(p.get("compute", {}).items()) if s >= 0.05)
            rows.append([f"- {phase}", _fmt(p["wall"], ".1f"), compute, _fmt(p.get("overhead"), ".1f")])
    return ["stage / phase", "seconds", "actors' compute, s", "no actor working, s"], rows


def _data_rows(data_report: dict) -> Table:
    """Rows loaded and skipped (with reasons) per data split."""
    rows = []
    for split, r in data_report.items():
        if not r:
            rows.append([split, "not configured", "–", "–"])
            continue
        skipped = r.get("skipped") or {}
        reasons = ", ".join(f"{reason}: {n}" for reason, n in skipped.items())
        rows.append([split, str(r.get("path")), _fmt(r.get("loaded")), f"{sum(skipped.values())} {reasons}".strip()])
    return ["split", "path", "loaded", "skipped"], rows


def _read_metrics(path: Path) -> tuple[list[dict], int]:
    """The records of metrics.jsonl and how many lines were unreadable (a run killed mid-write)."""
    lines = [line for line in (path.read_text().splitlines() if path.exists() else []) if line.strip()]
    records = [r for r in map(_parse_json, lines) if isinstance(r, dict)]
    return records, len(lines) - len(records)


def _parse_json(text: str) -> Any:
    """Parsed JSON, or None if the text is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return None


def _read_json(path: Path) -> Any:
    """The JSON content of a file, or None if it is missing or unreadable."""
    return _parse_json(path.read_text()) if path.is_file() else None


def _plot(run: Path, records: Sequence[dict], fallback: Path) -> tuple[Path | None, str]:
    """The run's dynamics.png, or one regenerated from the metrics at fallback, with a note."""
    if (run / "dynamics.png").is_file():
        return run / "dynamics.png", ""
    from mstar_ray.telemetry.plots import plot_dynamics  # matplotlib only when a plot has to be drawn

    try:
        return plot_dynamics(records, fallback), "dynamics.png is missing; regenerated from metrics.jsonl."
    except ValueError:
        return None, "No plot: dynamics.png is missing and metrics.jsonl has no iteration records."


def _overview(run: Path, summary: dict, config: dict, iters: Sequence[dict]) -> Table:
    """Name, mode, progress and end state of the run, from summary.json or else the config and last iteration."""
    last, loop = (iters[-1] if iters else {}), config.get("loop") or {}
    done = max((r["iteration"] for r in iters), default=0)
    rows = [  # (label, value, number format)
        ("run", (config.get("run") or {}).get("name", run.name), ""),
        ("directory", str(run), ""),
        ("mode", summary.get("mode", loop.get("mode")), ""),
        ("selection", summary.get("selection", loop.get("selection")), ""),
        ("iterations", f"{done} of {summary.get('iterations', loop.get('iterations', '?'))}", ""),
        ("wall time (s)", summary.get("wall_seconds", "– (unfinished: no summary.json)"), ".1f"),
        ("final temperature", summary.get("final_temperature", last.get("temperature")), ".2f"),
        ("weights version", summary.get("weights_version", last.get("weights_version")), ""),
        ("missing files", ", ".join(name for name in EXPECTED if not (run / name).exists()) or "none", ""),
    ]
    selected = summary.get("selected_data") or {}
    if selected.get("selected_advantage") is not None:
        rows.append(("selected data, process-correct", _selected_text(selected), ""))
    return ["", "value"], [[label, _fmt(value, spec)] for label, value, spec in rows]


def _selected_text(selected: dict) -> str:
    """The whole run's selected data: how much of it was sound, beside random draws of as many from the same pools."""
    advantage = [100 * selected[f"selected_advantage{end}"] for end in ("", "_low", "_high")]
    return (
        f"{100 * selected['selected_process_correct']:.1f}% of {selected['selected']}; random draws "
        f"{100 * selected['random_k_process_correct']:.1f}%; beyond random {advantage[0]:+.1f} points "
        f"(95% interval {advantage[1]:+.1f} to {advantage[2]:+.1f})"
    )


RESPONSE_FILES = ("test_responses_pre_evolved.jsonl", "test_responses_final.jsonl")
RESPONSES_SHOWN = 4
MARKS = {"true": "✓ ", "false": "✗ ", None: ""}


def _step_cell(step: dict | None) -> str:
    """One step as a cell: its verdict mark, its text on one line, and its PRM score."""
    if step is None:
        return ""
    score = step.get("score")
    scored = f" [PRM {score:.2f}]" if isinstance(score, float) else ""
    return MARKS.get(step.get("verdict"), "") + " ".join(str(step.get("text", "")).split()) + scored


def _response_sections(run: Path) -> list[Section]:
    """The first few test prompts with the pre-evolved and final greedy responses side by side, step by step."""
    pre, final = ([r for r in _read_metrics(run / name)[0] if "steps" in r] for name in RESPONSE_FILES)
    if not pre or not final:
        return []
    by_id = {r["id"]: r for r in final}
    sections = []
    for a in [r for r in pre if r["id"] in by_id][:RESPONSES_SHOWN]:
        b = by_id[a["id"]]
        steps = max(len(a["steps"]), len(b["steps"]))
        rows = [
            [str(i + 1), *(_step_cell(r["steps"][i] if i < len(r["steps"]) else None) for r in (a, b))]
            for i in range(steps)
        ]
        outcome = (str(r.get("process") or ("correct" if r.get("correct") else "wrong")) for r in (a, b))
        rows.append(["result", *outcome])
        note = f"{' '.join(a['question'].split())} Gold answer: {a['answer']}."
        sections.append(Section(f"Test prompt {a['id']}", (["step", "pre-evolved", "final"], rows), note))
    return sections


def _sections(run: Path, plot_fallback: Path) -> list[Section]:
    """Gather every section of the report from the files of the run directory."""
    summary, data_report = _read_json(run / "summary.json"), _read_json(run / "data_report.json")
    config_text = (run / "config.yaml").read_text() if (run / "config.yaml").is_file() else None
    config = yaml.safe_load(config_text or "") or {}
    records, bad_lines = _read_metrics(run / "metrics.jsonl")
    iters = [r for r in records if "temperature_search" not in r and isinstance(r.get("iteration"), int)]
    searches = [r["temperature_search"] for r in records if isinstance(r.get("temperature_search"), dict)]
    results = _results_rows(summary or {})
    eval_note = "" if results else "Final evaluation missing: the run has no test evaluation (loop.eval_test)."
    if summary is None:
        eval_note = "Final evaluation missing: summary.json is missing (the run has not finished)."
    iter_note = "" if iters else "No iteration records."
    iter_note += f" {bad_lines} unreadable line(s) of metrics.jsonl skipped." if bad_lines else ""
    plot, plot_note = _plot(run, records, plot_fallback)
    return [
        Section("Run summary", _overview(run, summary or {}, config, iters)),
        Section("Final test evaluation", results, eval_note),
        Section("Iterations", _iteration_rows(iters), iter_note.strip()),
        Section("Temperature searches", _search_rows(searches), "" if searches else "No temperature search."),
        Section("Where the time went", _profile_rows(records, summary), PROFILE_NOTE),
        Section("Training dynamics", note=plot_note, image=plot),
        *_response_sections(run),
        Section("Data", _data_rows(data_report or {}), "" if data_report else "data_report.json is missing."),
        Section("Config", note="" if config_text else "config.yaml is missing.", pre=config_text),
    ]


def _render_md(title: str, sections: Sequence[Section], out: Path) -> str:
    """The report as Markdown; the plot is referenced by a path relative to the report."""
    parts = [f"# {title}"]
    for sec in sections:
        parts += [f"## {sec.title}"] + ([sec.note] if sec.note else [])
        parts += [_md_table(sec.table)] if sec.table and sec.table[1] else []
        if sec.image:
            parts.append(f"![training dynamics]({Path(os.path.relpath(sec.image, out.parent)).as_posix()})")
        parts += [f"```yaml\n{sec.pre.rstrip()}\n```"] if sec.pre else []
    return "\n\n".join(parts) + "\n"


def _html_table(table: Table) -> str:
    """An HTML table with escaped cells."""
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


_CSS = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}pre{background:#f6f6f6;padding:1em}"
    "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child{text-align:left}"
)


def _render_html(title: str, sections: Sequence[Section]) -> str:
    """The report as one HTML page with no external resources; the plot is an embedded PNG."""
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(f"<style>{_CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>")
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        parts += [f"<p>{html.escape(sec.note)}</p>"] if sec.note else []
        parts += [_html_table(sec.table)] if sec.table and sec.table[1] else []
        if sec.image:
            data = base64.b64encode(sec.image.read_bytes()).decode("ascii")
            parts.append(f"<img alt='training dynamics' style='max-width:100%' src='data:image/png;base64,{data}'>")
        parts += [f"<pre>{html.escape(sec.pre)}</pre>"] if sec.pre else []
    return "\n".join(parts) + "\n</body></html>\n"


def write_report(run_dir: str | Path, out: str | Path | None = None, fmt: str = "html") -> Path:
    """Write a report of a run directory (fmt "html" or "md"; default RUN_DIR/report.<fmt>) and return its path."""
    run = Path(run_dir)
    if fmt not in ("html", "md"):
        raise ValueError(f"report format must be html or md, not {fmt!r}")
    if not run.is_dir():
        raise FileNotFoundError(f"run directory {run} does not exist")
    if not any((run / name).exists() for name in ("config.yaml", "metrics.jsonl", "summary.json")):
        raise ValueError(f"{run} is not a run directory: it has no config.yaml, metrics.jsonl or summary.json")
    target = Path(out) if out is not None else run / f"report.{fmt}"
    target.parent.mkdir(parents=True, exist_ok=True)
    title = f"M-STaR run report: {run.name}"
    with tempfile.TemporaryDirectory() as tmp:
        # Markdown refers to the plot, so a regenerated one is kept beside the report; HTML embeds it.
        fallback = target.with_name(f"{target.stem}_dynamics.png") if fmt == "md" else Path(tmp, "dynamics.png")
        sections = _sections(run, fallback)
        text = _render_md(title, sections, target) if fmt == "md" else _render_html(title, sections)
    target.write_text(text)
    return target
