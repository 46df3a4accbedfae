"""One dataset row to a `Prompt`: which columns hold what, the text fields, and the images.

Columns are found by name unless `data.columns` names them:

- question: a LLaVA `conversations` column (human turn: question; gpt turn: answer, or chain of thought ending in
  a `# Answer` section), else the first of question, problem, query, prompt;
- answer: answer, final_answer, label, gt_answer; without one, the gpt turn or the reference's `# Answer` section;
- image: every one of images, image, decoded_image, image_path, image_paths present, columns of embedded images
  first; a row's images come from the first of them it has a value in (so "image": "a.png" and "images": [...]
  rows mix in one file). A value is a path (relative ones resolve against the image root), a `datasets.Image`
  value `{"bytes", "path"}` (bytes are written once into the image cache), or a list of these for several images;
- id: id, pid, index, question_id, uid, else the row number ("#12");
- reference: reference, solution, rationale (optional); without a `# Answer` section the answer is appended as one,
  so seed SFT learns the same response format the loop verifies;
- truth: truth (optional): an object saying what generated the row, kept as `Prompt.truth` for the process checker.

A row that cannot be used gives the reason as a string instead of a `Prompt`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from mstar_ray.config import DataColumnsConfig
from mstar_ray.core.answers import ANSWER_HEADING_RE, extract_answer
from mstar_ray.core.records import Prompt
from mstar_ray.data.images import image_problem, store_image_bytes

CONVERSATIONS = "conversations"
CANDIDATES: dict[str, tuple[str, ...]] = {
    "question": ("question", "problem", "query", "prompt"),
    "answer": ("answer", "final_answer", "label", "gt_answer"),
    "image": ("images", "image", "decoded_image", "image_path", "image_paths"),
    "id": ("id", "pid", "index", "question_id", "uid"),
    "reference": ("reference", "solution", "rationale"),
    "truth": ("truth",),
}


class MalformedLine:
    """Stands for a JSONL line that is not valid JSON."""


@dataclass(frozen=True)
class Columns:
    """The columns of one dataset holding each field; None where it has none."""

    question: str | None
    conversations: str | None  # LLaVA turns, used when there is no question column
    answer: str | None
    image: tuple[str, ...]  # a row's images come from the first of these it has a value in
    id: str | None
    reference: str | None
    truth: str | None = None

    def to_dict(self) -> dict[str, str | tuple[str, ...] | None]:
        return asdict(self)


def resolve_columns(
    names: Sequence[str],
    explicit: DataColumnsConfig,
    embedded: Collection[str],
    where: str,
    require_answer: bool = True,
) -> Columns:
    """The columns of a dataset with these column `names` (`embedded`: those holding image structs).

    Raises `ValueError` naming the `data.columns` key when a named column is missing or a needed one is not found.
    """
    if not names:  # no row is an object: every row is skipped for that, whatever the columns
        return Columns(None, None, None, (), None, None, None)
    listed = ", ".join(names)
    for key, name in explicit.model_dump().items():
        if name is not None and name not in names:
            raise ValueError(f"data.columns.{key}: {where} has no column {name!r}; its columns: {listed}")
    optional = ("answer", "id", "reference", "truth")
    found = {key: getattr(explicit, key) or _first(CANDIDATES[key], names) for key in optional}
    conversations = CONVERSATIONS if explicit.question is None and CONVERSATIONS in names else None
    question = explicit.question or (None if conversations else _first(CANDIDATES["question"], names))
    present = [c for c in CANDIDATES["image"] if c in names]
    image = (explicit.image,) if explicit.image else tuple(sorted(present, key=lambda c: c not in embedded))
    needed = [("question", question or conversations, f"{CONVERSATIONS}, {', '.join(CANDIDATES['question'])}")]
    needed.append(("image", image or None, ", ".join(CANDIDATES["image"])))
    if require_answer:
        answer_sources = found["answer"] or conversations or found["reference"]
        needed.append(("answer", answer_sources, ", ".join(CANDIDATES["answer"] + CANDIDATES["reference"])))
    for key, column, looked_for in needed:
        if column is None:
            raise ValueError(
                f"data.columns.{key}: no {key} column in {where} (looked for {looked_for}); its columns: {listed}; "
                f"name it with data.columns.{key}=COLUMN"
            )
    return Columns(question, conversations, found["answer"], image, found["id"], found["reference"], found["truth"])


def _first(candidates: Sequence[str], names: Sequence[str]) -> str | None:
    return next((c for c in candidates if c in names), None)


def _text(value: object) -> str | None:
    """A field's text, stripped ("" when absent, NaN included), or None when it is neither text nor a number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    return str(value).strip()


def strip_image_tags(text: str) -> str:
    return text.replace("<image>\n", "").replace("<image>", "").strip()


def has_answer_section(text: str) -> bool:
    return ANSWER_HEADING_RE.search(text) is not None


def parse_turns(turns: object, require_answer: bool = True) -> tuple[str, str, str] | str:
    """(question, answer, reference) from LLaVA conversation turns, or the reason they are unusable.

    The answer is the gpt turn's `# Answer` section when it has one (the turn is then the reference), else the
    whole turn. Without `require_answer` the human turn alone is enough and the answer may be "".
    """
    needed = 2 if require_answer else 1
    if not isinstance(turns, list) or len(turns) < needed or not all(isinstance(t, dict) for t in turns[:2]):
        return "no conversations"
    human, gpt = turns[0].get("value"), turns[1].get("value") if len(turns) > 1 else ""
    if not isinstance(human, str) or not isinstance(gpt, str) or not human.strip():
        return "empty question or answer"
    if require_answer and not gpt.strip():
        return "empty question or answer"
    sectioned = has_answer_section(gpt)
    answer = (extract_answer(gpt) or "") if sectioned else gpt.strip()
    if require_answer and not answer:
        return "no final answer"
    return strip_image_tags(human), answer, gpt if sectioned else ""


class RowParser:
    """Turns the rows of one dataset into prompts, writing embedded images into `image_cache`."""

    def __init__(
        self, columns: Columns, image_root: Path, image_cache: Path, check_images: bool, require_answer: bool
    ) -> None:
        self.columns, self.image_root, self.image_cache = columns, image_root, image_cache
        self.check_images, self.require_answer = check_images, require_answer
        self.cached_images = 0  # images written from (or found in the cache for) embedded bytes

    def row_id(self, row: object, index: int) -> str:
        """The row's id, or "#<row number>" when it has none."""
        value = row.get(self.columns.id) if isinstance(row, dict) and self.columns.id else None
        text = _text(value)
        return text if text else f"#{index}"

    def parse(self, row: object, index: int) -> Prompt | str:
        """The prompt of one row, or the reason it cannot be used."""
        if isinstance(row, MalformedLine):
            return "malformed JSON line"
        if not isinstance(row, dict):
            return "row is not an object"
        texts = self._texts(row)
        if isinstance(texts, str):
            return texts
        images = self._images(next((row[c] for c in self.columns.image if row.get(c) not in (None, "", [])), None))
        if isinstance(images, str):
            return images
        truth = row.get(self.columns.truth) if self.columns.truth else None
        if truth is not None and not isinstance(truth, dict):
            return "truth is not an object"
        question, answer, reference = texts
        return Prompt(self.row_id(row, index), question, images, answer, reference, truth)

    def _texts(self, row: dict) -> tuple[str, str, str] | str:
        """(question, answer, reference) of a row, or the reason they are unusable."""
        c = self.columns
        answer = _text(row.get(c.answer)) if c.answer else ""
        reference = _text(row.get(c.reference)) if c.reference else ""
        if answer is None or reference is None:
            return f"{'answer' if answer is None else 'reference'} is not text"
        if c.conversations:
            turns = parse_turns(row.get(c.conversations), self.require_answer and not answer)
            if isinstance(turns, str):
                return turns
            question, turn_answer, turn_reference = turns
            answer, reference = answer or turn_answer, reference or turn_reference
        else:
            question = _text(row.get(c.question))
            if question is None:
                return "question is not text"
            question = strip_image_tags(question)
            if not question:
                return "no question"
        if reference and has_answer_section(reference):
            answer = answer or extract_answer(reference) or ""
        elif reference:  # a solution without the `# Answer` section the loop's responses end with
            reference = f"{reference}\n\n# Answer\n\n{answer}" if answer else ""
        if self.require_answer and not answer:
            return "no answer"
        return question, answer, reference

    def _images(self, value: object) -> tuple[str, ...] | str:
        """Absolute paths of a row's images, or the reason they are unusable."""
        items = value if isinstance(value, list) else [value]
        if not items or any(item is None or item == "" for item in items):
            return "no image field"
        paths: list[str] = []
        for item in items:
            if isinstance(item, dict) and item.get("bytes") is not None:
                if not isinstance(item["bytes"], bytes):
                    return "image field has wrong type"
                try:
                    paths.append(str(store_image_bytes(item["bytes"], self.image_cache)))
                except ValueError:
                    return "undecodable image bytes"
                except OSError as err:  # the whole load fails the same way: say which key moves the cache
                    raise ValueError(
                        f"cannot write embedded images to {self.image_cache} ({err}); set data.image_cache to a "
                        "writable folder every node can read"
                    ) from err
                self.cached_images += 1
                continue
            name = item.get("path") if isinstance(item, dict) else item
            if not isinstance(name, str):
                return "image field has wrong type" if not isinstance(item, dict) else "no image field"
            if not name:
                return "no image field"
            path = self.image_root / name
            problem = image_problem(path, self.check_images)
            if problem:
                return problem
            paths.append(str(path.resolve()))
        return tuple(paths)
