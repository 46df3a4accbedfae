"""Reasoning steps of a response in the paper's format: steps separated by a blank line, then `# Answer`."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mstar_ray.config import ScoreAggregation

STEP_SEPARATOR = "\n\n"
ANSWER_HEADER = "# Answer"


def split_steps(response: str) -> list[str]:
    """The response's steps; the `# Answer` section stays with the last reasoning step, so it is scored too."""
    chunks = [c.strip() for c in response.split(STEP_SEPARATOR) if c.strip()]
    if not chunks:
        return [response.strip()]
    answer_at = next((i for i, c in enumerate(chunks) if c.startswith(ANSWER_HEADER)), None)
    if answer_at is None:
        return chunks
    head = max(answer_at - 1, 0)
    return chunks[:head] + [STEP_SEPARATOR.join(chunks[head:])]


def step_prefixes(steps: Sequence[str]) -> list[str]:
    """Response prefixes ending after each step but the last, ready to be continued."""
    return [STEP_SEPARATOR.join(steps[: i + 1]) + STEP_SEPARATOR for i in range(len(steps) - 1)]


def aggregate(step_scores: Sequence[float], how: ScoreAggregation) -> float:
    """One response score from its step scores (0 for a response that was not scored)."""
    if not step_scores:
        return 0.0
    if how == ScoreAggregation.MIN:
        return min(step_scores)
    if how == ScoreAggregation.MEAN:
        return sum(step_scores) / len(step_scores)
    if how == ScoreAggregation.LAST:
        return step_scores[-1]
    return math.prod(step_scores)
