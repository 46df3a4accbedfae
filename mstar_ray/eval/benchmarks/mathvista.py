"""MathVista testmini (Lu et al., ICLR 2024) from the Hugging Face parquet or the GitHub `testmini.json` + `images/`.

Hugging Face `AI4Math/MathVista`: `data/testmini-*.parquet` with pid, question, image (a path string),
decoded_image (`datasets.Image`), choices, unit, precision, answer, question_type, answer_type, metadata (task, ...)
and query. GitHub `lupantech/MathVista`: `data/testmini.json` mapping pid to the same fields (no decoded_image,
no query), images at `images/<pid>.jpg` beside it. Scoring follows the official `calculate_score.py`: a
multiple-choice answer is compared as the chosen option's text (an answer naming no option goes to the nearest
option by edit distance, as there), integers after `int(float(x))`, floats after rounding to `precision` decimals,
lists element by element.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from mstar_ray.config import OnBadRow
from mstar_ray.core.answers import extract_answer
from mstar_ray.core.records import Prompt
from mstar_ray.data.formats import LoadReport
from mstar_ray.eval.benchmarks.extract import (
    choice_letter,
    numbers_in,
    response_letter,
    response_number,
    response_numbers,
)
from mstar_ray.eval.benchmarks.items import LETTERS, BenchItem, lettered_options, with_step_format
from mstar_ray.eval.benchmarks.sources import (
    collect_items,
    existing,
    parquet_files,
    parquet_rows,
    present,
    stored_image,
)

NAME = "mathvista"
SPLIT = "testmini"
TASKS = {
    "figure question answering": "FQA",
    "geometry problem solving": "GPS",
    "math word problem": "MWP",
    "textbook question answering": "TQA",
    "visual question answering": "VQA",
}
ANSWER_TYPES = ("text", "integer", "float", "list")
_DECIMALS = {1: "one decimal place, such as 1.2, 1.3, 1.4", 2: "two decimal places, such as 1.23, 1.34, 1.45"}


def _answer_hint(answer_type: str, precision: int | None) -> str:
    if answer_type == "integer":
        return "the final value, an integer such as 1, 2, 3"
    if answer_type == "float":
        places = _DECIMALS.get(precision or 0, f"{precision} decimal places")
        return f"the final value, a floating-point number with {places}"
    return "the final value, a Python list such as [1, 2, 3]"


def question_text(question: str, unit: str, options: tuple[str, ...], answer_type: str, precision: int | None) -> str:
    """The official query's question, unit and choices, then the project's response format."""
    text = f"Question: {question}" + (f" (Unit: {unit})" if unit else "")
    if options:
        return with_step_format(f"{text}\nChoices:\n{lettered_options(options)}")
    return with_step_format(text, _answer_hint(answer_type, precision))


def _precision(row: dict) -> int | None:
    value = row.get("precision")
    return int(value) if present(value) else None


def parse_row(row: dict, cache_dir: Path, roots: list[Path]) -> BenchItem | str:
    """A `BenchItem` from one MathVista problem, or the reason it is unusable."""
    question, answer = str(row.get("question") or "").strip(), str(row.get("answer") or "").strip()
    if not question:
        return "no question"
    if not answer:
        return "no answer"
    question_type, answer_type = row.get("question_type"), row.get("answer_type")
    if question_type not in ("multi_choice", "free_form") or answer_type not in ANSWER_TYPES:
        return "unknown question or answer type"
    task = TASKS.get(str((row.get("metadata") or {}).get("task", "")))
    if task is None:
        return "unknown task"
    options = tuple(str(c) for c in row.get("choices") or ())
    if question_type == "multi_choice" and answer not in options:
        return "answer not among the options"
    if question_type == "free_form" and answer_type != "list" and not numbers_in(answer):
        return "answer is not a number"
    cell = row.get("decoded_image")
    image = stored_image(cell if isinstance(cell, dict) and cell.get("bytes") else row.get("image"), cache_dir, roots)
    if isinstance(image, str):
        return image
    if question_type == "free_form":
        gold, options = answer, ()
    else:
        gold = LETTERS[options.index(answer)]
    unit = str(row.get("unit") or "").strip()
    text = question_text(question, unit, options, answer_type, _precision(row))
    prompt = Prompt(str(row.get("pid", "")), text, (str(image),), gold)
    return BenchItem(prompt, task, True, options, question_type, answer_type, _precision(row))


def load(
    path: str | Path, cache_dir: str | Path, on_bad_row: OnBadRow = OnBadRow.SKIP, limit: int | None = None
) -> tuple[list[BenchItem], LoadReport]:
    """testmini items from a `testmini.json` (or its folder) or a parquet file / Hugging Face snapshot."""
    source = existing(path)
    json_file = source if source.suffix == ".json" else source / "testmini.json"
    if json_file.is_file():
        problems = json.loads(json_file.read_text())
        if not isinstance(problems, dict):
            raise ValueError(f"{json_file}: expected a JSON object mapping pid to problem")
        rows = [{"pid": pid} | p if isinstance(p, dict) else p for pid, p in problems.items()]
        roots, report = [json_file.parent], LoadReport(str(json_file), "json", SPLIT)
    else:
        files = parquet_files(source, SPLIT)
        rows = parquet_rows(files)
        roots = [source if source.is_dir() else source.parent, files[0].parent]
        report = LoadReport(str(source), "parquet", SPLIT, image_cache=str(cache_dir))
    parse = partial(parse_row, cache_dir=Path(cache_dir), roots=roots)
    return collect_items(report, rows, parse, lambda row: str(row.get("pid", "")), on_bad_row, limit)


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def chosen_letter(response: str, options: tuple[str, ...]) -> str | None:
    """The option a response chose; an `# Answer` naming none goes to the nearest option text, as officially."""
    answer = extract_answer(response)
    if answer is None:
        return response_letter(response, options)
    letter = choice_letter(answer, options)
    if letter is None:
        nearest = min(range(len(options)), key=lambda i: _edit_distance(answer, options[i]))
        letter = LETTERS[nearest]
    return letter


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def score(item: BenchItem, response: str) -> tuple[str | None, bool]:
    """(normalized prediction, whether it equals the gold answer) by the item's question and answer type."""
    gold = item.prompt.answer
    if item.question_type == "multi_choice":
        letter = chosen_letter(response, item.options)
        if letter is None:
            return None, False
        return letter, item.options[LETTERS.index(letter)] == item.options[LETTERS.index(gold)]
    if item.answer_type == "list":
        values = response_numbers(response)
        if values is None:
            return None, False
        return "[" + ", ".join(_number_text(v) for v in values) + "]", values == numbers_in(gold)
    value = response_number(response)
    if value is None:
        return None, False
    if item.answer_type == "integer":
        prediction = str(int(value))
        return prediction, prediction == gold
    places = item.precision if item.precision is not None else len(gold.partition(".")[2])
    rounded = round(value, places)
    return str(rounded), rounded == round(numbers_in(gold)[0], places)
