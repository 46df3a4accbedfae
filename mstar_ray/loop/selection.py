"""Selection rules: which correct responses of a prompt become training examples.

A rule sees one prompt's verified (and, for the PRM rules, scored) samples and returns the ones to train on.
Rules are registered by `SelectionRule`. The PRM re-ranks correct responses; it never admits a wrong one. A rule
that draws at random draws from the prompt's own generator, so what one prompt keeps does not depend on the others.
The oracle rule ranks by the process checker instead of the PRM: what a perfect PRM would keep, on data with ground
truth only.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mstar_ray.config import ScoreAggregation, SelectionRule
from mstar_ray.core.records import PromptRollouts, Sample, TrainExample
from mstar_ray.core.seeds import derive_seed
from mstar_ray.core.steps import aggregate
from mstar_ray.eval.metrics import rank_by_prm
from mstar_ray.eval.process import Process


@dataclass(frozen=True)
class SelectionSpec:
    """A rule and its settings."""

    rule: SelectionRule
    k: int = 2  # responses kept per prompt (the cap for prm_threshold)
    threshold: float = 0.5  # prm_threshold keeps scores above this
    aggregation: ScoreAggregation = ScoreAggregation.MIN


Rule = Callable[[PromptRollouts, SelectionSpec, random.Random], list[Sample]]


def _correct(group: PromptRollouts) -> list[Sample]:
    """Correct samples, each distinct response text once."""
    unique = {s.text: s for s in reversed(group.samples) if s.correct}
    return [s for s in group.samples if s.correct and unique.get(s.text) is s]


def _scored_correct(group: PromptRollouts, rule: SelectionRule) -> list[Sample]:
    correct = _correct(group)
    if any(not s.step_scores for s in correct):
        raise ValueError(f"selection rule {rule.value} needs PRM step scores on every correct sample")
    return correct


def _checked_correct(group: PromptRollouts, rule: SelectionRule) -> list[Sample]:
    correct = _correct(group)
    if any(s.process is None for s in correct):
        raise ValueError(f"selection rule {rule.value} needs ground truth; prompt {group.prompt.id} has none")
    return correct


def select_random_k(group: PromptRollouts, spec: SelectionSpec, rng: random.Random) -> list[Sample]:
    """Up to k correct samples drawn uniformly."""
    correct = _correct(group)
    return rng.sample(correct, min(spec.k, len(correct)))


def select_all_correct(group: PromptRollouts, spec: SelectionSpec, rng: random.Random) -> list[Sample]:
    """Every correct sample (k is ignored)."""
    return _correct(group)


def select_top_k_by_prm(group: PromptRollouts, spec: SelectionSpec, rng: random.Random) -> list[Sample]:
    """The k correct samples the PRM scores highest (M-STaR's default, k=2)."""
    return rank_by_prm(_scored_correct(group, spec.rule), spec.aggregation)[: spec.k]


def select_above_threshold(group: PromptRollouts, spec: SelectionSpec, rng: random.Random) -> list[Sample]:
    """Correct samples whose PRM score is above the threshold, best first, at most k."""
    ranked = rank_by_prm(_scored_correct(group, spec.rule), spec.aggregation)
    return [s for s in ranked if aggregate(s.step_scores, spec.aggregation) > spec.threshold][: spec.k]


def select_oracle_top_k(group: PromptRollouts, spec: SelectionSpec, rng: random.Random) -> list[Sample]:
    """The k correct samples the process checker ranks highest: process-correct, then unsupported, then flawed."""
    correct = _checked_correct(group, spec.rule)
    order = {Process.PROCESS_CORRECT.value: 0, Process.UNSUPPORTED.value: 1}
    return sorted(correct, key=lambda s: order.get(s.process, 2))[: spec.k]


def select_oracle_sound(group: PromptRollouts, spec: SelectionSpec, rng: random.Random) -> list[Sample]:
    """Up to k process-correct samples, drawn uniformly: a prompt without a sound response contributes nothing (what
    a perfect PRM would keep under a threshold)."""
    sound = [s for s in _checked_correct(group, spec.rule) if s.process == Process.PROCESS_CORRECT.value]
    return rng.sample(sound, min(spec.k, len(sound)))


SELECTION_RULES: dict[SelectionRule, Rule] = {
    SelectionRule.RANDOM_K: select_random_k,
    SelectionRule.ALL_CORRECT: select_all_correct,
    SelectionRule.PRM_TOP_K: select_top_k_by_prm,
    SelectionRule.PRM_THRESHOLD: select_above_threshold,
    SelectionRule.ORACLE_TOP_K: select_oracle_top_k,
    SelectionRule.ORACLE_SOUND: select_oracle_sound,
}


def select_training_examples(rollouts: Sequence[PromptRollouts], spec: SelectionSpec, seed: int) -> list[TrainExample]:
    """Apply a selection rule to every prompt (rules see each distinct correct response once); a prompt's random
    draws come from `seed` and its id."""
    rule = SELECTION_RULES[spec.rule]
    return [
        TrainExample(group.prompt, s.text)
        for group in rollouts
        for s in rule(group, spec, random.Random(derive_seed(seed, group.prompt.id)))
    ]
