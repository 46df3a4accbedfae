"""Selection rules: which correct responses of a prompt become training examples.

A rule sees one prompt's verified samples and returns the ones to train on. Rules are registered by
`SelectionRule`, the extension point where the PRM re-rankers plug in.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from mstar_ray.config import SelectionRule
from mstar_ray.records import PromptRollouts, Sample, TrainExample

Rule = Callable[[PromptRollouts, int, random.Random], list[Sample]]


def _correct(group: PromptRollouts) -> list[Sample]:
    """Correct samples, each distinct response text once."""
    unique = {s.text: s for s in reversed(group.samples) if s.correct}
    return [s for s in group.samples if s.correct and unique.get(s.text) is s]


def select_random_k(group: PromptRollouts, k: int, rng: random.Random) -> list[Sample]:
    """Up to k correct samples drawn uniformly."""
    correct = _correct(group)
    return rng.sample(correct, min(k, len(correct)))


def select_all_correct(group: PromptRollouts, k: int, rng: random.Random) -> list[Sample]:
    """Every correct sample (k is ignored)."""
    return _correct(group)


SELECTION_RULES: dict[SelectionRule, Rule] = {
    SelectionRule.RANDOM_K: select_random_k,
    SelectionRule.ALL_CORRECT: select_all_correct,
}


def select_training_examples(
    rollouts: Sequence[PromptRollouts], rule: SelectionRule, k: int, rng: random.Random
) -> list[TrainExample]:
    """Apply a selection rule to every prompt (rules see each distinct correct response once)."""
    return [TrainExample(group.prompt, s.text) for group in rollouts for s in SELECTION_RULES[rule](group, k, rng)]
