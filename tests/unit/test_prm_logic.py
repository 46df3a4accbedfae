"""The PRM's pure logic: steps, aggregation, Monte-Carlo labels, PRM selection, Reward-Pass@2, voting, temperature."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from mstar_ray.config import LabelKind, ScoreAggregation, SelectionRule, TemperatureCriterion
from mstar_ray.core.records import Prompt, PromptRollouts, Sample
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.core.steps import aggregate, split_steps, step_prefixes
from mstar_ray.eval.metrics import mark_correct, random_pass_at_k, reward_pass_at_k
from mstar_ray.eval.temperature import search_temperature
from mstar_ray.loop.selection import SELECTION_RULES, SelectionSpec, select_training_examples
from mstar_ray.prm.labeling import step_value
from mstar_ray.prm.pseudo_labels import apply_pseudo_labels, weighted_vote

PROMPT = Prompt("p0", "How many cells in the grid are colored?", ("/x.png",), "6")
MIN = ScoreAggregation.MIN


def _resp(answer: str, tag: str = "") -> str:
    return f"Count the red cells: there are 2{tag}.\n\nAdd: 2 + 4 = 6.\n\n# Answer\n\n{answer}"


def _group(scored: Sequence[tuple[str, list[float]]], prompt: Prompt = PROMPT) -> PromptRollouts:
    group = PromptRollouts(prompt, [Sample(prompt.id, t, 10, True, 1, step_scores=s) for t, s in scored])
    mark_correct([group])
    return group


def test_split_steps_keeps_the_answer_with_the_last_step() -> None:
    assert split_steps(_resp("6")) == ["Count the red cells: there are 2.", "Add: 2 + 4 = 6.\n\n# Answer\n\n6"]
    assert split_steps("one\n\n\n\ntwo") == ["one", "two"]
    assert split_steps("# Answer\n\n6") == ["# Answer\n\n6"]
    assert split_steps("") == [""]
    # the answer section is found as the verifier finds it, even without a blank line before it
    assert split_steps("a\n\nlast step\n## Final Answer: 5") == ["a", "last step\n\n## Final Answer: 5"]
    assert step_prefixes(["a", "b", "c"]) == ["a", "a\n\nb"]
    assert step_prefixes(["only"]) == []


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        (ScoreAggregation.MIN, 0.2),
        (ScoreAggregation.MEAN, 0.5),
        (ScoreAggregation.LAST, 0.8),
        (ScoreAggregation.PRODUCT, 0.5 * 0.2 * 0.8),
    ],
)
def test_aggregate(how: ScoreAggregation, expected: float) -> None:
    assert aggregate([0.5, 0.2, 0.8], how) == pytest.approx(expected)
    assert aggregate([], how) == 0.0


def test_step_value_soft_and_hard() -> None:
    assert step_value([True, False, False, False], LabelKind.SOFT) == 0.25
    assert step_value([True, False, False, False], LabelKind.HARD) == 1.0
    assert step_value([False, False], LabelKind.HARD) == 0.0


def test_prm_top_k_keeps_the_highest_scored_correct_responses() -> None:
    group = _group(
        [
            (_resp("6", "a"), [0.9, 0.3]),
            (_resp("6", "b"), [0.8, 0.7]),
            (_resp("7"), [0.99, 0.99]),
            (_resp("6", "c"), [0.6, 0.6]),
            (_resp("6", "a"), [0.9, 0.3]),
        ]  # the duplicate text counts once
    )
    spec = SelectionSpec(SelectionRule.PRM_TOP_K, 2, aggregation=MIN)
    picked = SELECTION_RULES[SelectionRule.PRM_TOP_K](group, spec, random.Random(0))
    assert [s.text for s in picked] == [_resp("6", "b"), _resp("6", "c")]  # min 0.7, 0.6; the wrong 0.99 never
    last = SelectionSpec(SelectionRule.PRM_TOP_K, 1, aggregation=ScoreAggregation.LAST)
    assert [s.text for s in SELECTION_RULES[SelectionRule.PRM_TOP_K](group, last, random.Random(0))] == [
        _resp("6", "b")
    ]


def test_prm_threshold_keeps_scores_above_alpha_up_to_k() -> None:
    group = _group([(_resp("6", "a"), [0.9, 0.3]), (_resp("6", "b"), [0.8, 0.7]), (_resp("6", "c"), [0.6, 0.65])])
    rule = SELECTION_RULES[SelectionRule.PRM_THRESHOLD]
    picked = rule(group, SelectionSpec(SelectionRule.PRM_THRESHOLD, 4, threshold=0.5), random.Random(0))
    assert [s.text for s in picked] == [_resp("6", "b"), _resp("6", "c")]
    assert rule(group, SelectionSpec(SelectionRule.PRM_THRESHOLD, 1, threshold=0.5), random.Random(0))[0].text == (
        _resp("6", "b")
    )
    assert rule(group, SelectionSpec(SelectionRule.PRM_THRESHOLD, 4, threshold=0.75), random.Random(0)) == []


def test_prm_rules_refuse_unscored_samples() -> None:
    group = _group([(_resp("6"), [])])
    with pytest.raises(ValueError, match="prm_top_k needs PRM step scores"):
        select_training_examples([group], SelectionSpec(SelectionRule.PRM_TOP_K), seed=0)


def test_reward_pass_at_2_on_hand_built_cases() -> None:
    a = _group([(_resp("7"), [0.9]), (_resp("8"), [0.8]), (_resp("6"), [0.1])])  # correct one ranked 3rd: miss
    b = _group([(_resp("7"), [0.9]), (_resp("6"), [0.5]), (_resp("8"), [0.1])])  # ranked 2nd: hit
    c = _group([(_resp("7"), [0.9]), (_resp("8"), [0.5])])  # nothing correct: miss
    d = _group([(_resp("6"), [0.2, 0.9]), (_resp("7"), [0.5, 0.5]), (_resp("8"), [0.4, 0.4])])
    assert reward_pass_at_k([a, b, c], MIN, 2) == pytest.approx(1 / 3)
    assert reward_pass_at_k([a], MIN, 3) == 1.0
    assert reward_pass_at_k([d], MIN, 2) == 0.0  # min ranks the correct one last (0.2)
    assert reward_pass_at_k([d], ScoreAggregation.LAST, 2) == 1.0  # last ranks it first (0.9)


def test_random_pass_at_2_is_the_exact_expectation() -> None:
    a = _group([(_resp("7"), []), (_resp("8"), []), (_resp("6"), [])])  # 1 correct of 3: 1 - C(2,2)/C(3,2)
    b = _group([(_resp("6"), []), (_resp("6", "x"), [])])
    assert random_pass_at_k([a], 2) == pytest.approx(2 / 3)
    assert random_pass_at_k([a, b], 2) == pytest.approx((2 / 3 + 1) / 2)
    rng = random.Random(0)
    draws = [any(s.correct for s in rng.sample(a.samples, 2)) for _ in range(20_000)]
    assert sum(draws) / len(draws) == pytest.approx(2 / 3, abs=0.02)


def test_weighted_vote_sums_scores_of_equal_answers() -> None:
    unlabeled = Prompt("u0", PROMPT.question, ("/x.png",), "")
    group = _group([(_resp("7"), [0.9]), (_resp("6", "a"), [0.5]), (_resp("6.0", "b"), [0.5])], unlabeled)
    assert weighted_vote(group, MIN) in ("6", "6.0")  # 1.0 for six beats 0.9 for seven
    group.samples[0].step_scores = [1.5]
    assert weighted_vote(group, MIN) == "7"
    assert weighted_vote(_group([("no answer", [0.9])], unlabeled), MIN) is None


def test_pseudo_labels_relabel_and_report_agreement_with_hidden_gold() -> None:
    hidden = Prompt("u1", PROMPT.question, ("/x.png",), "6")  # the data has a gold answer the loop ignores
    right = _group([(_resp("6"), [0.9]), (_resp("7"), [0.2])], hidden)
    wrong = _group([(_resp("6"), [0.1]), (_resp("7"), [0.8])], hidden)
    empty = _group([("no answer", [0.9])], hidden)
    relabelled, agreement = apply_pseudo_labels([right, wrong, empty], MIN)
    assert [g.prompt.answer for g in relabelled] == ["6", "7"] and agreement == 0.5
    mark_correct(relabelled)
    assert [s.correct for s in relabelled[1].samples] == [False, True]


class TemperatureSensitiveGenerator:
    """K samples, wrong ones first; the number correct peaks at temperature 0.8 (all K) and falls off by 2 per 0.1."""

    def generate(self, prompts, params: SamplingParams, prefixes=None) -> list[PromptRollouts]:
        correct = max(0, params.n - round(abs(params.temperature - 0.8) * 20))
        texts = [_resp("7", str(i)) for i in range(params.n - correct)] + [_resp("6", str(i)) for i in range(correct)]
        return [PromptRollouts(p, [Sample(p.id, t, 10, True, 1) for t in texts]) for p in prompts]


class IndifferentScorer:
    """Scores every response the same, so its top 2 are the first two samples."""

    def score(self, rollouts, only_correct: bool = False) -> int:
        for g in rollouts:
            for s in g.samples:
                s.step_scores = [0.5]
        return sum(len(g.samples) for g in rollouts)


def test_temperature_search_picks_the_argmax_of_its_criterion_and_logs_the_curve() -> None:
    grid = [0.4, 0.6, 0.8, 1.0, 1.2]
    params = SamplingParams(n=8, temperature=1.0)
    gen = TemperatureSensitiveGenerator()
    by_pass = search_temperature(gen, None, [PROMPT], params, grid, TemperatureCriterion.PASS_AT_K)
    assert [p.temperature for p in by_pass.curve] == grid
    assert [p.pass_at_k for p in by_pass.curve] == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert all(p.reward_pass_at_2 is None for p in by_pass.curve)
    assert by_pass.chosen == 1.0  # a tie goes to the temperature closest to the current one
    by_reward = search_temperature(
        gen, IndifferentScorer(), [PROMPT], params, grid, TemperatureCriterion.REWARD_PASS_AT_2
    )
    # Only at 0.8 is a correct response among the first two (the PRM's top 2 under equal scores).
    assert [p.reward_pass_at_2 for p in by_reward.curve] == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert by_reward.chosen == 0.8
    assert by_reward.to_dict()["criterion"] == "reward_pass_at_2" and len(by_reward.to_dict()["curve"]) == 5
    with pytest.raises(ValueError, match="needs a PRM"):
        search_temperature(gen, None, [PROMPT], params, grid, TemperatureCriterion.REWARD_PASS_AT_2)
