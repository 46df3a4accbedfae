"""Load LLaVA / MathV360K-style conversations (JSON list or JSONL) into `Prompt` records.

A row looks like `{"id", "image": "rel/path.png", "conversations": [{"from": "human", "value": "<image>\\n..."},
{"from": "gpt", "value": "..."}]}`; "image" may also list several paths. Rows that cannot be used (missing fields,
no image, unreadable image) are skipped and counted by reason, or stop the load, as configured.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mstar_ray.answers import extract_answer
from mstar_ray.config import OnBadRow
from mstar_ray.data.images import image_problem
from mstar_ray.records import Prompt


class BadRowError(ValueError):
    """A dataset row could not be used and the config says to stop."""


@dataclass
class LoadReport:
    """How many rows of a file were loaded and why the others were skipped."""

    path: str
    loaded: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict[str, str] = field(default_factory=dict)  # reason -> first row id seen with it

    def to_dict(self) -> dict:
        return {"path": self.path, "loaded": self.loaded, "skipped": dict(self.skipped), "examples": self.examples}


class _MalformedLine:
    """Stands for a JSONL line that is not valid JSON."""


def _read_rows(path: Path) -> list:
    text = path.read_text()
    if path.suffix == ".jsonl":
        rows: list = []
        for line in text.splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    rows.append(_MalformedLine())
        return rows
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise BadRowError(f"{path}: expected a JSON list of rows, got {type(rows).__name__}")
    return rows


def parse_row(row: object, image_root: Path, check_image: bool = True, require_answer: bool = True) -> Prompt | str:
    """A `Prompt` from one row, or the reason the row is unusable.

    Without `require_answer` (unlabeled prompts) a row may have the human turn only; its answer is then "".
    """
    if isinstance(row, _MalformedLine):
        return "malformed JSON line"
    if not isinstance(row, dict):
        return "row is not an object"
    turns = row.get("conversations")
    needed = 2 if require_answer else 1
    if not isinstance(turns, list) or len(turns) < needed or not all(isinstance(t, dict) for t in turns[:2]):
        return "no conversations"
    human, gpt = turns[0].get("value"), turns[1].get("value") if len(turns) > 1 else ""
    if not isinstance(human, str) or not isinstance(gpt, str) or not human.strip():
        return "empty question or answer"
    if require_answer and not gpt.strip():
        return "empty question or answer"
    image = row.get("image")
    names = [image] if isinstance(image, str) else image
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        return "no image field"
    paths = [image_root / name for name in names]
    for path in paths:
        problem = image_problem(path, check_image)
        if problem:
            return problem
    answer = (extract_answer(gpt) or "") if "# Answer" in gpt else gpt.strip()
    if require_answer and not answer:
        return "no final answer"
    question = human.replace("<image>\n", "").replace("<image>", "").strip()
    reference = gpt if "# Answer" in gpt else ""
    images = tuple(str(path.resolve()) for path in paths)
    return Prompt(str(row.get("id", "")), question, images, answer, reference)


def load_prompts(
    path: str | Path,
    image_root: str | Path | None = None,
    on_bad_row: OnBadRow = OnBadRow.SKIP,
    check_images: bool = True,
    require_answer: bool = True,
) -> tuple[list[Prompt], LoadReport]:
    """Usable prompts of a LLaVA-style JSON/JSONL file; images resolve against `image_root` (default: its folder)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    root = Path(image_root) if image_root else path.parent
    report = LoadReport(str(path))
    prompts: list[Prompt] = []
    for index, row in enumerate(_read_rows(path)):
        result = parse_row(row, root, check_images, require_answer)
        if isinstance(result, Prompt):
            prompts.append(result)
            continue
        row_id = str(row.get("id", f"#{index}")) if isinstance(row, dict) else f"#{index}"
        if on_bad_row == OnBadRow.ERROR:
            raise BadRowError(f"{path}: row {row_id}: {result}")
        report.skipped[result] += 1
        report.examples.setdefault(result, row_id)
    report.loaded = len(prompts)
    return prompts, report
