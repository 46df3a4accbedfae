"""Final-answer extraction and gold-label matching for multimodal reasoning responses."""

from __future__ import annotations

import enum
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from math_verify import parse as mv_parse
from math_verify import verify as mv_verify
from math_verify.errors import TimeoutException


class AnswerKind(enum.Enum):
    """How a gold label is compared: option letter, number, symbolic expression or plain text."""

    CHOICE = "choice"
    NUMBER = "number"
    MATH = "math"
    TEXT = "text"


@dataclass(frozen=True)
class Tolerance:
    """Numeric closeness used by the number matcher (as in math.isclose)."""

    rel_tol: float = 1e-4
    abs_tol: float = 1e-6


Matcher = Callable[[str, str, dict[str, str], Tolerance], bool]

_MATH_VERIFY_TIMEOUT_S = 5
# Sympy on adversarial input can be very slow; refuse to hand it huge strings.
_MATH_MAX_CHARS = 500

ANSWER_HEADING_RE = re.compile(r"(?im)^[ \t]*#{1,6}[ \t]*(?:final[ \t]+)?answer\b[ \t]*:?[ \t]*(.*)$")
_PREFIX_RE = re.compile(
    r"(?i)^(?:(?:so|therefore|thus),?\s+)?(?:the\s+)?(?:final\s+|correct\s+)?"
    r"(?:answer|option|choice)\b(?:\s+is)?\s*:?\s*"
)
_DELIM_RES = tuple(
    re.compile(p) for p in (r"^(\$\$?)([^$]*)\1$", r"(?s)^\\\((.*)\\\)$", r"(?s)^\\\[(.*)\\\]$", r"(?s)^\*\*(.*)\*\*$")
)
_BOXED_RE = re.compile(r"^\\(?:boxed|fbox)\s*\{")
_TEXT_CMD_RE = re.compile(r"\\(?:text|mathrm|mbox|textbf)\s*\{([^{}]*)\}")

_OPTION_LINE_RE = re.compile(r"^[ \t]*(?:\(([A-Z])\)|([A-Z])[.:)])[ \t]*(\S.*?)[ \t]*$", re.MULTILINE)
_OPTION_INLINE_RE = re.compile(r"\(([A-Z])\)[ \t]*([^\n]+?)(?=[ \t]*\([A-Z]\)|[ \t]*$)", re.MULTILINE)
_LETTER_RE = re.compile(r"^(?:\(([A-Za-z])\)|([A-Za-z])(?:[.:)]|$))")

_NUM = r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)"
_UNIT = (
    r"(?:%|°|\^\s*\{?\\circ\}?|"
    r"\s*(?:cm|mm|km|m|kg|mg|g|ml|l|ft|in|s|h|min|units?|degrees?)\b|\s+[a-zA-Z][a-zA-Z\s./]*)"
    r"(?:\^\{?[23]\}?|[²³])?"
)
_NUMBER_RE = re.compile(rf"\s*(?P<num>{_NUM})(?:\s*/\s*(?P<den>{_NUM}))?\s*(?:{_UNIT})?\s*")
_SYMBOLIC_CHARS_RE = re.compile(r"[\\^_{}]")
_KNOWN_FUNCS_RE = re.compile(r"sqrt|pi|sin|cos|tan|log|ln|exp")
_ARTICLES = frozenset({"a", "an", "the"})


def _unwrap_boxed(s: str) -> str:
    m = _BOXED_RE.match(s)
    if not m:
        return s
    depth = 0
    for i in range(m.end() - 1, len(s)):
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return s[m.end() : i] + s[i + 1 :]
    return s


def _clean(text: str) -> str:
    s = text.strip()
    for _ in range(10):
        prev = s
        s = _PREFIX_RE.sub("", s, count=1).strip()
        s = _unwrap_boxed(s).strip()
        for delim in _DELIM_RES:
            if m := delim.match(s):
                s = m.group(m.lastindex or 0).strip()
        s = s.rstrip(".").strip()
        if s == prev:
            break
    return s


def extract_answer(response: str) -> str | None:
    """The text of the final '# Answer' section (the last one), stripped; None when missing or empty."""
    headings = list(ANSWER_HEADING_RE.finditer(response or ""))
    if not headings:
        return None
    last = headings[-1]
    raw = last.group(1).strip()
    if not raw:
        lines = [ln.strip() for ln in response[last.end() :].splitlines() if ln.strip()]
        if not lines:
            return None
        raw = lines[0]
        # Display math often spans lines: keep it whole up to the closing delimiter.
        closing = {"$$": "$$", "\\[": "\\]"}.get(raw)
        if closing is not None and closing in lines[1:]:
            raw = " ".join(lines[: lines.index(closing, 1) + 1])
    answer = _clean(raw)
    return answer or None


def _consecutive_from_a(pairs: list[tuple[str, str]]) -> dict[str, str]:
    starts = [i for i, (letter, _) in enumerate(pairs) if letter == "A"]
    if not starts:
        return {}
    options: dict[str, str] = {}
    for letter, text in pairs[starts[-1] :]:
        if ord(letter) != ord("A") + len(options):
            break
        options[letter] = text.strip()
    return options if len(options) >= 2 else {}


def parse_choices(question: str) -> dict[str, str]:
    """Option letter -> option text parsed from a question; {} when it has no options."""
    lines = [(m.group(1) or m.group(2), m.group(3)) for m in _OPTION_LINE_RE.finditer(question or "")]
    options = _consecutive_from_a(lines)
    if not options:
        inline = [(m.group(1), m.group(2)) for m in _OPTION_INLINE_RE.finditer(question or "")]
        options = _consecutive_from_a(inline)
    return options


def _to_number(text: str) -> float | None:
    s = _TEXT_CMD_RE.sub(r" \1", _clean(text)).replace("\u2212", "-").replace("\\%", "%")
    if s.count("=") == 1:
        s = s.split("=")[1].strip()
    m = _NUMBER_RE.fullmatch(s)
    if m is None:
        return None
    try:
        value = float(m.group("num").replace(",", ""))
        if m.group("den"):
            value /= float(m.group("den").replace(",", ""))
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return value


def _normalize_text(text: str) -> str:
    words = re.sub(r"[^\w\s]", " ", _TEXT_CMD_RE.sub(r" \1", _clean(text)).lower()).split()
    content = [w for w in words if w not in _ARTICLES]
    return " ".join(content or words)


def _match_text(pred: str, gold: str, choices: dict[str, str], tol: Tolerance) -> bool:
    x, y = _to_number(pred), _to_number(gold)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=tol.rel_tol, abs_tol=tol.abs_tol)
    normalized = _normalize_text(pred)
    return bool(normalized) and normalized == _normalize_text(gold)


def _choice_letter(answer: str, choices: dict[str, str], tol: Tolerance) -> str | None:
    s = _clean(answer)
    if m := _LETTER_RE.match(s):
        letter = (m.group(1) or m.group(2)).upper()
        if letter in choices or len(s) <= 3:
            return letter
    for letter, text in choices.items():
        if _match_text(s, text, choices, tol):
            return letter
    return None


def classify_answer(gold: str, choices: dict[str, str]) -> AnswerKind:
    """The kind of comparison a gold label calls for, given the question's options."""
    g = _clean(gold)
    if choices and _choice_letter(g, choices, Tolerance()) in choices:
        return AnswerKind.CHOICE
    if _to_number(g) is not None:
        return AnswerKind.NUMBER
    if _SYMBOLIC_CHARS_RE.search(g):
        return AnswerKind.MATH
    if re.search(r"\d", g) and not re.search(r"[a-zA-Z]{3,}", _KNOWN_FUNCS_RE.sub("", g)):
        return AnswerKind.MATH
    return AnswerKind.TEXT


def _math_verify_timeout() -> int | None:
    # math-verify's timeout uses signal.alarm, which raises ValueError outside the main thread
    # (e.g. in a threaded Ray actor) even with raise_on_error=False, so disable it there.
    return _MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _math_verify_equal(pred: str, gold: str) -> bool:
    if len(pred) > _MATH_MAX_CHARS or len(gold) > _MATH_MAX_CHARS:
        return False
    timeout = _math_verify_timeout()
    try:
        gold_parsed = mv_parse(f"${gold}$", parsing_timeout=timeout)
        pred_parsed = mv_parse(f"${pred}$", parsing_timeout=timeout)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(mv_verify(gold_parsed, pred_parsed, timeout_seconds=timeout))
    except (Exception, TimeoutException):  # noqa: BLE001
        # Sympy can fail in countless ways on model output; TimeoutException is a BaseException.
        return False


def _match_expression(pred: str, gold: str, choices: dict[str, str], tol: Tolerance) -> bool:
    p, g = _clean(pred), _clean(gold)
    if not p or not g:
        return False
    if re.sub(r"\s+", "", p) == re.sub(r"\s+", "", g):
        return True
    x, y = _to_number(p), _to_number(g)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=tol.rel_tol, abs_tol=tol.abs_tol)
    return _math_verify_equal(p, g)


def _match_choice(pred: str, gold: str, choices: dict[str, str], tol: Tolerance) -> bool:
    gold_letter = _choice_letter(gold, choices, tol)
    pred_letter = _choice_letter(pred, choices, tol)
    return gold_letter is not None and pred_letter == gold_letter


MATCHERS: dict[AnswerKind, Matcher] = {
    AnswerKind.CHOICE: _match_choice,
    AnswerKind.NUMBER: _match_expression,
    AnswerKind.MATH: _match_expression,
    AnswerKind.TEXT: _match_text,
}


def answers_match(
    predicted: str,
    gold: str,
    choices: dict[str, str] | None = None,
    rel_tol: float = 1e-4,
    abs_tol: float = 1e-6,
) -> bool:
    """Whether a predicted final answer equals the gold one, by the gold's kind."""
    if not predicted or not gold or not predicted.strip() or not gold.strip():
        return False
    options = choices or {}
    kind = classify_answer(gold, options)
    return MATCHERS[kind](predicted, gold, options, Tolerance(rel_tol, abs_tol))


def is_correct(response: str, gold: str, question: str = "") -> bool:
    """Extract the answer from a full response and compare it with the gold label."""
    predicted = extract_answer(response)
    if predicted is None:
        return False
    return answers_match(predicted, gold, parse_choices(question))
