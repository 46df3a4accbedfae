"""Selection rules and the accuracy metrics computed from verified samples."""

from __future__ import annotations

import random

import pytest

from mstar_ray.config import SelectionRule
from mstar_ray.core.records import Prompt, PromptRollouts, Sample
from mstar_ray.eval.metrics import first_sample_accuracy, mark_correct, pass_at_k, sample_accuracy
from mstar_ray.loop.selection import SELECTION_RULES, SelectionSpec, select_training_examples

PROMPT = Prompt("p0", "How many red cells?", ("/x.png",), "3")


def _group(texts: list[str], prompt: Prompt = PROMPT) -> PromptRollouts:
    group = PromptRollouts(prompt, [Sample(prompt.id, t, 10, True, 1) for t in texts])
    mark_correct([group])
    return group


def _resp(answer: str, tag: str = "") -> str:
    return f"Count the red cells{tag}.\n\n# Answer\n\n{answer}"


def test_every_rule_is_registered() -> None:
    assert set(SELECTION_RULES) == set(SelectionRule)


def test_random_k_picks_only_correct_and_at_most_k() -> None:
    group = _group([_resp("3", str(i)) for i in range(5)] + [_resp("4"), "no answer at all"])
    rng = random.Random(0)
    for k in (1, 2, 4):
        picked = SELECTION_RULES[SelectionRule.RANDOM_K](group, SelectionSpec(SelectionRule.RANDOM_K, k), rng)
        assert len(picked) == k and all(s.correct for s in picked)
    assert len(SELECTION_RULES[SelectionRule.RANDOM_K](group, SelectionSpec(SelectionRule.RANDOM_K, 10), rng)) == 5


def test_random_k_is_random_over_correct_samples() -> None:
    group = _group([_resp("3", str(i)) for i in range(6)])
    rng = random.Random(1)
    seen = {
        s.text
        for _ in range(50)
        for s in SELECTION_RULES[SelectionRule.RANDOM_K](group, SelectionSpec(SelectionRule.RANDOM_K, 1), rng)
    }
    assert len(seen) == 6


def test_all_correct_ignores_k() -> None:
    group = _group([_resp("3", "a"), _resp("3", "b"), _resp("2"), _resp("3", "c")])
    assert (
        len(
            SELECTION_RULES[SelectionRule.ALL_CORRECT](
                group, SelectionSpec(SelectionRule.ALL_CORRECT, 1), random.Random(0)
            )
        )
        == 3
    )


def test_truncated_responses_are_never_correct() -> None:
    group = PromptRollouts(PROMPT, [Sample("p0", _resp("3"), 80, False, 1), Sample("p0", _resp("3", "x"), 9, True, 1)])
    mark_correct([group])
    assert [s.correct for s in group.samples] == [False, True]


def test_random_k_draws_distinct_texts() -> None:
    group = _group([_resp("3")] * 6 + [_resp("3", "other")])
    for seed in range(20):
        picked = SELECTION_RULES[SelectionRule.RANDOM_K](
            group, SelectionSpec(SelectionRule.RANDOM_K, 2), random.Random(seed)
        )
        assert sorted(s.text for s in picked) == sorted([_resp("3"), _resp("3", "other")])


def test_no_correct_sample_gives_nothing() -> None:
    group = _group([_resp("5"), _resp("6")])
    examples = select_training_examples([group], SelectionSpec(SelectionRule.RANDOM_K, 2), seed=0)
    assert examples == []


def test_duplicates_are_kept_once_and_prompt_travels() -> None:
    other = Prompt("p1", "Which?\nChoices:\n(A) red\n(B) blue", ("/y.png",), "B")
    groups = [_group([_resp("3")] * 4), _group([_resp("B"), _resp("(B) blue", "x"), _resp("A")], other)]
    examples = select_training_examples(groups, SelectionSpec(SelectionRule.ALL_CORRECT, 2), seed=0)
    assert [(e.prompt.id, e.response) for e in examples] == [
        ("p0", _resp("3")),
        ("p1", _resp("B")),
        ("p1", _resp("(B) blue", "x")),
    ]


def test_a_prompts_random_draw_depends_on_the_seed_and_its_id_not_on_the_other_prompts() -> None:
    spec = SelectionSpec(SelectionRule.RANDOM_K, 1)
    groups = [_group([_resp("3", str(i)) for i in range(8)], Prompt(f"p{j}", "?", ("/x.png",), "3")) for j in range(6)]
    picks = lambda chosen, seed: {e.prompt.id: e.response for e in select_training_examples(chosen, spec, seed)}  # noqa: E731
    together = picks(groups, seed=7)
    assert picks(groups[::-1], seed=7) == together and picks(groups[3:4], seed=7) == {"p3": together["p3"]}
    assert len(set(together.values())) > 1  # prompts with the same samples draw differently (their ids differ)
    assert any(picks(groups, seed=s) != together for s in range(8, 12))  # another seed, other draws


def test_metrics_on_hand_built_groups() -> None:
    groups = [
        _group([_resp("3"), _resp("1")]),  # first correct
        _group([_resp("1"), _resp("3")]),  # second correct only
        _group([_resp("1"), _resp("2")]),  # none
        _group([_resp("1"), "garbage"]),  # none, malformed
    ]
    assert first_sample_accuracy(groups) == pytest.approx(0.25)
    assert pass_at_k(groups) == pytest.approx(0.5)
    assert sample_accuracy(groups) == pytest.approx(2 / 8)
    assert pass_at_k([]) == 0.0
