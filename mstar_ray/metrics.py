"""Verification of sampled responses and the accuracy figures computed from them."""

from __future__ import annotations

from collections.abc import Sequence

from mstar_ray.answers import is_correct
from mstar_ray.records import PromptRollouts


def mark_correct(rollouts: Sequence[PromptRollouts]) -> None:
    """Set `correct` on every sample: it ended by itself and its final answer matches the prompt's label."""
    for group in rollouts:
        for sample in group.samples:
            # A response cut off at max_new_tokens is never correct: training on it would teach stopping mid-text.
            ok = sample.finished and is_correct(sample.text, group.prompt.answer, group.prompt.question)
            sample.correct = ok


def first_sample_accuracy(rollouts: Sequence[PromptRollouts]) -> float:
    """Share of prompts whose first sample is correct (greedy accuracy when decoding greedily)."""
    return sum(bool(g.samples[0].correct) for g in rollouts) / len(rollouts) if rollouts else 0.0


def pass_at_k(rollouts: Sequence[PromptRollouts]) -> float:
    """Share of prompts with at least one correct sample among their K."""
    return sum(g.num_correct > 0 for g in rollouts) / len(rollouts) if rollouts else 0.0


def sample_accuracy(rollouts: Sequence[PromptRollouts]) -> float:
    """Share of all samples that are correct."""
    total = sum(len(g.samples) for g in rollouts)
    return sum(g.num_correct for g in rollouts) / total if total else 0.0


def mean_response_tokens(rollouts: Sequence[PromptRollouts]) -> float:
    """Average sampled response length in tokens."""
    lengths = [s.num_tokens for g in rollouts for s in g.samples]
    return sum(lengths) / len(lengths) if lengths else 0.0
