"""Reasoning steps of a response in the paper's format: steps separated by a blank line, then `# Answer`."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mstar_ray.config import ScoreAggregation
from mstar_ray.core.answers import ANSWER_HEADING_RE

STEP_SEPARATOR = "\n\n"


def split_steps(response: str) -> list[str]:
    """The response's steps; the answer section (found as the verifier finds it) joins the last reasoning step,
    so it is scored too. Steps are stripped and rejoined with a blank line, whatever separated them."""
    headings = list(ANSWER_HEADING_RE.finditer(response))
    body, answer = response, ""
    if headings:
        body, answer = response[: headings[-1].start()], response[headings[-1].start() :].strip()
    steps = [c.strip() for c in body.split(STEP_SEPARATOR) if c.strip()]
    if answer:
        steps = steps[:-1] + [STEP_SEPARATOR.join(steps[-1:] + [answer])]
    return steps or [response.strip()]


def step_prefixes(steps: Sequence[str]) -> list[str]:
    """Response prefixes ending after each step but the last, ready to be continued.

    A prefix ends with its step's last character, not with the separator: the model writes the separator itself.
    Trailing whitespace tokenizes differently at the end of a text than before the next word (a byte-level BPE
    merges a final "\n\n" into the token it otherwise writes only before the answer), and a continuation after a
    token the model never saw there is noise, which would make the step's Monte-Carlo label noise too."""
    return [STEP_SEPARATOR.join(steps[: i + 1]) for i in range(len(steps) - 1)]


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
