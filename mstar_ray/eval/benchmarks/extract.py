"""Final answers from free-form responses: the project's `# Answer` section first, then benchmark-style fallbacks.

A response in the project's format ends with "# Answer" and the answer. Responses that lack it (a model before
warm-up, a truncated one) fall back to what the benchmarks' own rule-based matchers look for: "the answer is (B)",
the last "(X)" option marker, an option's text, or the last number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from mstar_ray.core.answers import extract_answer
from mstar_ray.eval.benchmarks.items import LETTERS, BenchItem

_LEADING_LETTER_RE = re.compile(r"^(?:\(([A-Za-z])\)|([A-Za-z])(?=$|[.:),](?:\s|$)))")
_STATED_LETTER_RE = re.compile(r"\b(?i:answer(?:\s+is)?)\s*[:：]?\s*\(?([A-J])\)?(?![A-Za-z])")
_MARKED_LETTER_RE = re.compile(r"\(([A-J])\)")
_FRAC_RE = re.compile(r"\\[dt]?frac\{(-?\d+(?:\.\d+)?)\}\{(-?\d+(?:\.\d+)?)\}")
_NUMBER_RE = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|(?<![\w.])-?\.\d+")
_MARKUP_RE = re.compile(r"\*\*|\$|\\boxed\{|\\text\{|[{}]")


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s%°.-]", " ", _MARKUP_RE.sub("", text).lower()).split()).rstrip(".")


def choice_letter(text: str, options: Sequence[str]) -> str | None:
    """The option an answer names: by a leading letter ("B", "(B) ...", "B. ...", which is what the prompt asks
    for, so it wins even where option texts are letters themselves), then by its exact text, then as the only
    option whose text it contains."""
    cleaned = _MARKUP_RE.sub("", text).strip()
    cleaned = re.sub(r"(?i)^(?:the\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:：]?\s*", "", cleaned)
    normalized = _normalize(cleaned)
    if m := _LEADING_LETTER_RE.match(cleaned):
        written = m.group(1) or m.group(2)
        if written.upper() in LETTERS[: len(options)] and (written.isupper() or len(cleaned) <= 3):
            return written.upper()
    for i, option in enumerate(options):
        if normalized and normalized == _normalize(option):
            return LETTERS[i]
    contained = [i for i, option in enumerate(options) if _mentions(normalized, _normalize(option))]
    return LETTERS[contained[0]] if len(contained) == 1 else None


def _mentions(text: str, phrase: str) -> bool:
    return bool(phrase) and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def response_letter(response: str, options: Sequence[str]) -> str | None:
    """The option letter a response chose: from its `# Answer` section, else benchmark-style fallbacks."""
    answer = extract_answer(response)
    if answer is not None:
        return choice_letter(answer, options)
    valid = LETTERS[: len(options)]
    for pattern in (_STATED_LETTER_RE, _MARKED_LETTER_RE):
        letters = [m.group(1).upper() for m in pattern.finditer(response or "")]
        letters = [x for x in letters if x in valid]
        if letters:
            return letters[-1]
    text = (response or "").strip()
    return choice_letter(text, options) if text and len(text) <= 200 else None


def numbers_in(text: str) -> list[float]:
    """The numbers written in a text, in order ("1,000" is one thousand, "3/4" and "\\frac{3}{4}" are 0.75)."""
    text = _FRAC_RE.sub(lambda m: f"{m.group(1)}/{m.group(2)}", text or "").replace("\u2212", "-")
    values: list[float] = []
    for m in _NUMBER_RE.finditer(text):
        numerator, _, denominator = m.group(0).replace(",", "").replace(" ", "").partition("/")
        try:
            value = float(numerator) / float(denominator) if denominator else float(numerator)
        except (ValueError, ZeroDivisionError):
            continue
        if math.isfinite(value):  # a run of hundreds of digits is not a number anyone means
            values.append(value)
    return values


def response_number(response: str) -> float | None:
    """The number a response gives: the first one in its `# Answer` section, else the last one it writes."""
    answer = extract_answer(response)
    if answer is not None:
        values = numbers_in(answer)
        return values[0] if values else None
    values = numbers_in(response)
    return values[-1] if values else None


def response_numbers(response: str) -> list[float] | None:
    """The list of numbers a response gives (for list answers): its `# Answer` section's, else its last [...]."""
    answer = extract_answer(response)
    if answer is None:
        brackets = re.findall(r"\[[^\[\]]*\]", response or "")
        answer = brackets[-1] if brackets else None
    if answer is None:
        return None
    values = numbers_in(answer)
    return values or None


def score_choice(item: BenchItem, response: str) -> tuple[str | None, bool]:
    """(chosen letter, whether it is the gold letter) for a multiple-choice item; single pass, no circular shifts."""
    letter = response_letter(response, item.options)
    return letter, letter is not None and letter == item.prompt.answer
