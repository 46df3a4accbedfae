"""Process correctness on data whose generator is known: is each step of a response true, not only its answer?

A prompt of the synthetic colour-grid task carries its ground truth (`Prompt.truth`: the grid's per-colour counts,
the question kind, the weights given in the text). The step phrases below are the task's own: the generator writes
its gold chains with them and the checker reads responses with them, so the two cannot drift apart.

Each step is marked true, false or unverifiable (a step the checker cannot read). A correct response is
*process-correct* when no step is false and every quantity the question needs (each colour's count, and for a
weighted question each colour's score) is stated by a true step; *flawed-correct* when some step is false; and
*unsupported* when nothing is false but a needed quantity is never stated. A step is true when every value it states
is the true value for this image and question: an addition of two miscounted scores is false even when its
arithmetic is right, because the sum it states is not the true one.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mstar_ray.core.answers import ANSWER_HEADING_RE
from mstar_ray.core.steps import STEP_SEPARATOR

TASK = "color_grid"  # the `truth["task"]` of the synthetic task's rows


class Verdict(enum.Enum):
    TRUE = "true"
    FALSE = "false"
    UNVERIFIABLE = "unverifiable"


class Process(enum.Enum):
    """What a response is, answer and steps together."""

    PROCESS_CORRECT = "process_correct"
    FLAWED_CORRECT = "flawed_correct"  # right answer, some step false
    UNSUPPORTED = "unsupported"  # right answer, nothing false, a needed quantity never stated
    WRONG = "wrong"  # wrong or missing answer


# --- the task's step phrases: written by the generator, read by the checker ---


def count_step(color: str, n: int) -> str:
    return f"Count the {color} cells: there {'is' if n == 1 else 'are'} {n}."


def score_step(color: str, n: int, weight: int) -> str:
    """A colour's count (n) and score in one step."""
    return f"Score of {color}: {n} x {weight} = {n * weight}."


def add_step(a: int, b: int) -> str:
    return f"Add: {a} + {b} = {a + b}."


def total_step(terms: Sequence[int]) -> str:
    """All the terms summed in one step."""
    return f"Total: {' + '.join(map(str, terms))} = {sum(terms)}."


def extremes_step(high: int, low: int) -> str:
    return f"The largest count is {high} and the smallest is {low}."


def subtract_step(a: int, b: int) -> str:
    return f"Subtract: {a} - {b} = {a - b}."


def most_step(color: str, letter: str) -> str:
    return f"The most frequent color is {color}, option ({letter})."


def grid_step(rows: int, cols: int) -> str:
    """True of every image of a grid this size, and needed by no question: the task's irrelevant step."""
    return f"The grid has {rows} rows and {cols} columns."


_COUNT = re.compile(r"Count the (\w+) cells: there (?:is|are) (\d+)\.")
_SCORE = re.compile(r"Score of (\w+): (\d+) x (\d+) = (\d+)\.")
_ADD = re.compile(r"Add: (\d+) \+ (\d+) = (\d+)\.")
_TOTAL = re.compile(r"Total: (\d+(?: \+ \d+)*) = (\d+)\.")
_EXTREMES = re.compile(r"The largest count is (\d+) and the smallest is (\d+)\.")
_SUBTRACT = re.compile(r"Subtract: (\d+) - (\d+) = (\d+)\.")
_MOST = re.compile(r"The most frequent color is (\w+), option \(([A-Z])\)\.")
_GRID = re.compile(r"The grid has (\d+) rows and (\d+) columns\.")


@dataclass(frozen=True)
class StepCheck:
    text: str
    verdict: Verdict
    states: tuple[str, ...] = ()  # the needed quantities this step states truly, e.g. ("count:red", "score:red")


@dataclass(frozen=True)
class ProcessCheck:
    steps: tuple[StepCheck, ...]
    process: Process

    @property
    def false_steps(self) -> int:
        return sum(s.verdict == Verdict.FALSE for s in self.steps)


def has_truth(truth: Mapping | None) -> bool:
    """Whether the checker can read responses to a prompt with this ground truth."""
    return bool(truth) and truth.get("task") == TASK


def needed_quantities(truth: Mapping) -> set[str]:
    """What a sound response must state: every colour's count, and its score when the question weighs colours."""
    needed = {f"count:{c}" for c in truth["counts"]}
    if truth["kind"] == "weighted":
        needed |= {f"score:{c}" for c in truth["counts"]}
    return needed


def combination_terms(truth: Mapping) -> list[int]:
    """The numbers a total or weighted question adds up: the counts, or each colour's count times its weight."""
    counts = truth["counts"]
    if truth["kind"] == "weighted":
        return [n * truth["weights"][c] for c, n in counts.items()]
    return list(counts.values())


def partial_sums(terms: Sequence[int]) -> set[int]:
    """The sums of every subset of the terms: what a running total may truly state, in any order of addition."""
    sums = {0}
    for t in terms:
        sums |= {s + t for s in sums}
    return sums


def check_step(text: str, truth: Mapping) -> StepCheck:
    """One step (without the answer section) against the ground truth."""
    counts, weights = truth["counts"], truth.get("weights") or {}
    step = text.strip()
    if m := _COUNT.fullmatch(step):
        color, n = m.group(1), int(m.group(2))
        if color not in counts:
            return StepCheck(step, Verdict.FALSE)
        ok = counts[color] == n
        return StepCheck(step, Verdict.TRUE if ok else Verdict.FALSE, (f"count:{color}",) if ok else ())
    if m := _SCORE.fullmatch(step):
        color, n, w, p = m.group(1), *map(int, m.group(2, 3, 4))
        ok = color in counts and color in weights and n == counts[color] and w == weights[color] and p == n * w
        states = (f"count:{color}", f"score:{color}") if ok else ()
        return StepCheck(step, Verdict.TRUE if ok else Verdict.FALSE, states)
    if m := _ADD.fullmatch(step):
        a, b, c = map(int, m.groups())
        terms = combination_terms(truth)
        sums = partial_sums(terms)
        return _verdict(step, a + b == c and a in sums and b in terms and c in sums)
    if m := _TOTAL.fullmatch(step):
        terms, stated = sorted(int(t) for t in m.group(1).split(" + ")), int(m.group(2))
        return _verdict(step, terms == sorted(combination_terms(truth)) and stated == sum(terms))
    if m := _SUBTRACT.fullmatch(step):
        a, b, c = map(int, m.groups())
        return _verdict(step, a == max(counts.values()) and b == min(counts.values()) and c == a - b)
    if m := _EXTREMES.fullmatch(step):
        high, low = map(int, m.groups())
        return _verdict(step, high == max(counts.values()) and low == min(counts.values()))
    if m := _MOST.fullmatch(step):
        color, letter = m.groups()
        ranked = sorted(counts, key=lambda c: -counts[c])
        best_letter = chr(ord("A") + list(counts).index(ranked[0]))
        return _verdict(step, color == ranked[0] and letter == best_letter)
    if m := _GRID.fullmatch(step):
        rows, cols = map(int, m.groups())
        grid = truth["grid"]
        return _verdict(step, rows == len(grid) and cols == len(grid[0]))
    return StepCheck(step, Verdict.UNVERIFIABLE)


def _verdict(step: str, ok: bool) -> StepCheck:
    return StepCheck(step, Verdict.TRUE if ok else Verdict.FALSE)


def reasoning_steps(response: str) -> list[str]:
    """The steps before the answer section (all of them when there is none)."""
    headings = list(ANSWER_HEADING_RE.finditer(response))
    body = response[: headings[-1].start()] if headings else response
    return [c.strip() for c in body.split(STEP_SEPARATOR) if c.strip()]


def check_response(response: str, truth: Mapping, answer_correct: bool) -> ProcessCheck:
    """Every step of a response marked, and what the response is (`answer_correct`: as the verifier found it)."""
    steps = tuple(check_step(s, truth) for s in reasoning_steps(response))
    if not answer_correct:
        process = Process.WRONG
    elif any(s.verdict == Verdict.FALSE for s in steps):
        process = Process.FLAWED_CORRECT
    elif needed_quantities(truth) <= {q for s in steps for q in s.states}:
        process = Process.PROCESS_CORRECT
    else:
        process = Process.UNSUPPORTED
    return ProcessCheck(steps, process)
