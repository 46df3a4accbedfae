"""Pseudo-labels for unlabeled prompts by PRM-weighted voting over their sampled final answers (docs/recipe.md,
Prompt variation): each response votes for its answer with its PRM score; equal answers share one tally."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mstar_ray.config import ScoreAggregation
from mstar_ray.core.answers import answers_match, extract_answer, parse_choices
from mstar_ray.core.records import PromptRollouts
from mstar_ray.core.steps import aggregate


def weighted_vote(group: PromptRollouts, aggregation: ScoreAggregation) -> str | None:
    """The answer with the largest summed PRM score among finished samples (None: no sample has an answer)."""
    choices = parse_choices(group.prompt.question)
    tallies: list[list] = []  # [representative answer, summed score]
    for sample in group.samples:
        answer = extract_answer(sample.text) if sample.finished else None
        if not answer:
            continue
        weight = aggregate(sample.step_scores, aggregation)
        tally = next((t for t in tallies if answers_match(answer, t[0], choices)), None)
        if tally is None:
            tallies.append([answer, weight])
        else:
            tally[1] += weight
    if not tallies:
        return None
    return max(tallies, key=lambda t: t[1])[0]


def apply_pseudo_labels(
    rollouts: Sequence[PromptRollouts], aggregation: ScoreAggregation
) -> tuple[list[PromptRollouts], float | None]:
    """Scored rollouts of unlabeled prompts relabelled with their vote winners (prompts without one dropped),
    and the share of winners equal to the hidden gold answer when the data has one (None otherwise)."""
    out, agree, known = [], 0, 0
    for group in rollouts:
        label = weighted_vote(group, aggregation)
        if label is None:
            continue
        if group.prompt.answer:
            known += 1
            agree += answers_match(label, group.prompt.answer, parse_choices(group.prompt.question))
        out.append(PromptRollouts(replace(group.prompt, answer=label), group.samples))
    return out, (agree / known if known else None)
