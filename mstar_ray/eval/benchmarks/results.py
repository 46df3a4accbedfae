"""Scoring responses, per-benchmark summaries (overall, per sub-task, the "-R" subset), and the paper's tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from mstar_ray.eval.benchmarks.items import BenchItem
from mstar_ray.eval.benchmarks.registry import BENCHMARKS

MATHVISTA_TASKS = ("FQA", "GPS", "MWP", "TQA", "VQA")


@dataclass(frozen=True)
class ItemResult:
    """The scored response to one benchmark item."""

    id: str
    subtask: str
    reasoning: bool  # in the "-R" subset
    prediction: str | None  # normalized extracted answer (an option letter, a number); None when none was found
    gold: str
    correct: bool
    response: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TableRow:
    """One line of the results tables: a model at a stage and its summaries by benchmark name."""

    model: str
    stage: str  # e.g. "pre-evolved", "final"
    summaries: Mapping[str, dict]  # benchmark name -> `summarize` output


def score_items(name: str, items: Sequence[BenchItem], responses: Sequence[str]) -> list[ItemResult]:
    """Extract and score each item's response with the benchmark's rules."""
    score = BENCHMARKS[name].score
    results = []
    for item, response in zip(items, responses, strict=True):
        prediction, correct = score(item, response)
        p = item.prompt
        results.append(ItemResult(p.id, item.subtask, item.reasoning, prediction, p.answer, correct, response))
    return results


def accuracy(results: Sequence[ItemResult]) -> dict:
    """Items, correct items and their share (0 when there are no items)."""
    correct = sum(r.correct for r in results)
    return {"items": len(results), "correct": correct, "accuracy": correct / len(results) if results else 0.0}


def summarize(name: str, results: Sequence[ItemResult]) -> dict:
    """Overall and per-sub-task accuracy; for MMStar and MMBench also the "-R" subset's, which is the headline."""
    bench = BENCHMARKS[name]
    summary = {"benchmark": name, "title": bench.title} | accuracy(results)
    subtasks = sorted({r.subtask for r in results if r.subtask})
    summary["subtasks"] = {s: accuracy([r for r in results if r.subtask == s]) for s in subtasks}
    if bench.reasoning_subset:
        summary["reasoning"] = accuracy([r for r in results if r.reasoning])
    summary["headline"] = summary["reasoning"]["accuracy"] if bench.reasoning_subset else summary["accuracy"]
    return summary


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _markdown(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    rows = [header, ["---"] * len(header), *lines]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def benchmark_table(rows: Sequence[TableRow]) -> str:
    """The paper's results table (benchmarks that were run, then their average) and, when MathVista was run, its
    sub-task table; accuracies in percent with one decimal."""
    names = [n for n in BENCHMARKS if any(n in row.summaries for row in rows)]
    lines = []
    for row in rows:
        values = [row.summaries[n]["headline"] if n in row.summaries else None for n in names]
        known = [v for v in values if v is not None]
        average = sum(known) / len(known) if known else None
        lines.append([row.model, row.stage, *map(_percent, values), _percent(average)])
    text = _markdown(["model", "stage", *(BENCHMARKS[n].title for n in names), "avg"], lines)
    if "mathvista" in names:
        task_lines = []
        for row in rows:
            summary = row.summaries.get("mathvista")
            tasks = summary["subtasks"] if summary else {}
            all_items = summary["accuracy"] if summary else None
            figures = [tasks[t]["accuracy"] if t in tasks else None for t in MATHVISTA_TASKS]
            task_lines.append([row.model, row.stage, _percent(all_items), *map(_percent, figures)])
        header = ["model", "stage", "ALL", *MATHVISTA_TASKS]
        text += "\n\nMathVista testmini by task\n\n" + _markdown(header, task_lines)
    return text + "\n"
