"""Verification of sampled responses and the accuracy figures computed from them."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mstar_ray.config import ScoreAggregation
from mstar_ray.core.answers import is_correct
from mstar_ray.core.records import PromptRollouts, Sample
from mstar_ray.core.steps import aggregate
from mstar_ray.eval.process import check_response, has_truth


def mark_correct(rollouts: Sequence[PromptRollouts]) -> None:
    """Set `correct` on every sample: it ended by itself and its final answer matches the prompt's label; where the
    prompt has ground truth, also set `process` (whether the steps behind the answer are true)."""
    for group in rollouts:
        truth = group.prompt.truth
        for sample in group.samples:
            # A response cut off at max_new_tokens is never correct: training on it would teach stopping mid-text.
            ok = sample.finished and is_correct(sample.text, group.prompt.answer, group.prompt.question)
            sample.correct = ok
            sample.process = check_response(sample.text, truth, ok).process.value if has_truth(truth) else None


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


def rank_by_prm(samples: Sequence[Sample], aggregation: ScoreAggregation) -> list[Sample]:
    """Samples from the highest PRM score down; ties keep sampling order."""
    return sorted(samples, key=lambda s: -aggregate(s.step_scores, aggregation))


def reward_pass_at_k(rollouts: Sequence[PromptRollouts], aggregation: ScoreAggregation, k: int = 2) -> float:
    """Share of prompts with a correct response among the PRM's top k of their samples (Reward-Pass@2 for k=2)."""
    hits = sum(any(s.correct for s in rank_by_prm(g.samples, aggregation)[:k]) for g in rollouts)
    return hits / len(rollouts) if rollouts else 0.0


def random_pass_at_k(rollouts: Sequence[PromptRollouts], k: int = 2) -> float:
    """Expected share of prompts with a correct response among k samples drawn at random without replacement."""
    if not rollouts:
        return 0.0
    total = 0.0
    for g in rollouts:
        n, wrong = len(g.samples), len(g.samples) - g.num_correct
        draw = min(k, n)
        total += 1.0 - math.comb(wrong, draw) / math.comb(n, draw)
    return total / len(rollouts)
