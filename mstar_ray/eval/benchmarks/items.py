"""One benchmark question as the evaluation sees it, and the prompt text shared by every benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mstar_ray.core.records import Prompt

LETTERS = "ABCDEFGHIJ"

# The project's response format (docs/recipe.md, Response format), asked for after each benchmark's own prompt.
STEP_FORMAT = (
    'Reason step by step, leaving a blank line between steps. Then write a line "# Answer", a blank line, and {answer}.'
)
CHOICE_ANSWER = "the letter of the correct option"


@dataclass(frozen=True)
class BenchItem:
    """A benchmark question with what scoring and aggregation need besides the prompt."""

    prompt: Prompt  # answer: the gold option letter, or the gold value of a free-form question
    subtask: str  # e.g. "FQA" (MathVista), "science" (M3CoT domain); "" when the benchmark has none
    reasoning: bool  # in the "-R" reasoning subset of MMStar / MMBench (True on benchmarks without one)
    options: tuple[str, ...] = ()  # option texts in letter order; empty for a free-form question
    question_type: str = "multi_choice"  # MathVista: "multi_choice" or "free_form"
    answer_type: str = "text"  # MathVista: "text", "integer", "float" or "list"
    precision: int | None = None  # MathVista floats: decimals kept before comparing


def lettered_options(options: Sequence[str]) -> str:
    """Options one per line as "(A) text"."""
    return "\n".join(f"({LETTERS[i]}) {text}" for i, text in enumerate(options))


def with_step_format(text: str, answer: str = CHOICE_ANSWER) -> str:
    """A benchmark prompt followed by the instruction to answer in the project's response format."""
    return f"{text.strip()}\n\n{STEP_FORMAT.format(answer=answer)}"


def gold_letter(answer: str, options: Sequence[str]) -> str | None:
    """The gold letter when `answer` is one of the option letters, else None."""
    letter = answer.strip().upper()
    if len(letter) == 1 and letter in LETTERS[: len(options)]:
        return letter
    return None
