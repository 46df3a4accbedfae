"""The process checker of the synthetic task, its figures, the oracle selection rule, and ground truth in the data."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from mstar_ray.config import ConfigError, ScoreAggregation, SelectionRule
from mstar_ray.config.io import load_config
from mstar_ray.core.answers import is_correct
from mstar_ray.core.records import Prompt, PromptRollouts, Sample
from mstar_ray.data.formats import load_prompts
from mstar_ray.eval.metrics import mark_correct
from mstar_ray.eval.process import Process, Verdict, check_response
from mstar_ray.eval.process_metrics import (
    Advantage,
    auc,
    flaw_rate,
    labels_as_prm,
    prm_pairwise_accuracy,
    selection_quality,
    step_label_separation,
    strict_accuracy,
)
from mstar_ray.loop.datasets import check_ground_truth
from mstar_ray.loop.record import selected_data_quality
from mstar_ray.loop.selection import SelectionSpec, select_training_examples
from mstar_ray.toy.synthetic import Item, TaskSpec, make_item, read_task_spec, write_synthetic_dataset

# red 2 x 3 = 6, green 4 x 1 = 4, blue 1 x 1 = 1: total 11
TRUTH = {
    "task": "color_grid",
    "kind": "weighted",
    "grid": [[None, "green", "blue"], ["green", None, "red"], ["green", "red", "green"]],
    "counts": {"red": 2, "green": 4, "blue": 1},
    "weights": {"red": 3, "green": 1, "blue": 1},
}
GOLD = [
    "Score of red: 2 x 3 = 6.",
    "Score of green: 4 x 1 = 4.",
    "Score of blue: 1 x 1 = 1.",
    "Add: 6 + 4 = 10.",
    "Add: 10 + 1 = 11.",
]
PROMPT = Prompt("p", "In the grid, ... What is the total score of the grid?", ("a.png",), "11", truth=TRUTH)


def respond(steps: list[str], answer: str | None = "11") -> str:
    return "\n\n".join(steps) + (f"\n\n# Answer\n\n{answer}" if answer is not None else "")


def check(steps: list[str], answer: str | None = "11"):
    text = respond(steps, answer)
    return check_response(text, TRUTH, is_correct(text, PROMPT.answer, PROMPT.question))


def test_the_gold_chain_is_process_correct() -> None:
    result = check(GOLD)
    assert result.process == Process.PROCESS_CORRECT
    assert [s.verdict for s in result.steps] == [Verdict.TRUE] * 5


def test_a_wrong_count_before_a_right_answer_is_flawed_correct() -> None:
    result = check(["Score of red: 1 x 3 = 3."] + GOLD[1:])  # the sums still use the true 6
    assert result.process == Process.FLAWED_CORRECT
    assert [s.verdict for s in result.steps] == [Verdict.FALSE] + [Verdict.TRUE] * 4


def test_two_compensating_errors_are_flawed_correct() -> None:
    steps = ["Score of red: 1 x 3 = 3.", "Score of green: 7 x 1 = 7.", GOLD[2], "Add: 3 + 7 = 10.", GOLD[4]]
    result = check(steps)
    assert result.process == Process.FLAWED_CORRECT and result.false_steps == 3  # the first sum is not a true one
    assert result.steps[4].verdict == Verdict.TRUE


def test_a_true_but_irrelevant_step_keeps_the_response_sound() -> None:
    result = check(["The grid has 3 rows and 3 columns."] + GOLD)
    assert result.process == Process.PROCESS_CORRECT and result.steps[0].verdict == Verdict.TRUE
    assert check(["The grid has 4 rows and 3 columns."] + GOLD).process == Process.FLAWED_CORRECT


def test_a_malformed_step_is_unverifiable_and_leaves_its_quantity_unstated() -> None:
    result = check(["Score of red: two x 3 = 6."] + GOLD[1:])
    assert result.steps[0].verdict == Verdict.UNVERIFIABLE and result.process == Process.UNSUPPORTED
    assert check(GOLD[1:]).process == Process.UNSUPPORTED  # a colour never scored


def test_a_missing_answer_section_is_wrong_whatever_its_steps() -> None:
    assert check(GOLD, answer=None).process == Process.WRONG
    assert check(GOLD, answer="12").process == Process.WRONG


def test_the_older_question_kinds_are_checked_too() -> None:
    spread = TRUTH | {"kind": "spread", "weights": None}
    text = respond(
        [
            "Count the red cells: there are 2.",
            "Count the green cells: there are 4.",
            "Count the blue cells: there is 1.",
        ]
        + ["The largest count is 4 and the smallest is 1.", "Subtract: 4 - 1 = 3."],
        "3",
    )
    assert check_response(text, spread, True).process == Process.PROCESS_CORRECT
    wrong = text.replace("there are 4", "there are 5")
    assert check_response(wrong, spread, True).process == Process.FLAWED_CORRECT


@pytest.mark.parametrize("kind", ["weighted", "total", "most", "spread"])
def test_generated_gold_chains_pass_and_flawed_ones_do_not(kind: str) -> None:
    rng = random.Random(0)
    for _ in range(50):
        item = make_item(TaskSpec(kinds=(kind,)), rng)
        assert check_response(item.gold_response, item.truth, True).process == Process.PROCESS_CORRECT
        flawed = make_item(TaskSpec(kinds=(kind,), false_step_share=1.0, irrelevant_step_share=1.0), rng)
        result = check_response(flawed.gold_response, flawed.truth, True)
        assert result.process == Process.FLAWED_CORRECT and result.false_steps == 1
        assert result.steps[0].text.startswith("The grid has") and result.steps[0].verdict == Verdict.TRUE


@pytest.mark.parametrize("kind", ["weighted", "total", "most", "spread"])
def test_shuffled_step_order_gives_a_prompt_several_sound_chains(kind: str) -> None:
    spec = TaskSpec(kinds=(kind,), colors=3, sums="total", step_order="shuffled")
    items = [make_item(spec, random.Random(seed)) for seed in range(40)]
    assert all(check_response(it.gold_response, it.truth, True).process == Process.PROCESS_CORRECT for it in items)

    def first_colour(item: Item) -> str:
        return re.search(r"red|green|blue", item.gold_response).group(0)

    assert {first_colour(it) for it in items} == {"red", "green", "blue"}  # the chains start with any colour
    fixed = [make_item(TaskSpec(kinds=(kind,), colors=3, sums="total"), random.Random(seed)) for seed in range(40)]
    assert {first_colour(it) for it in fixed} == {"red"}
    with pytest.raises(ValueError, match="step_order"):
        TaskSpec(step_order="sorted")


def test_the_loaders_keep_the_ground_truth_and_the_options_are_recorded(tmp_path: Path) -> None:
    spec = TaskSpec(
        seed_size=2, labeled_size=3, validation_size=1, test_size=1, false_step_share=0.5, kinds=("weighted",)
    )
    paths = write_synthetic_dataset(tmp_path, spec, seed=3)
    assert read_task_spec(tmp_path) == spec  # what make-model --data fits the tokenizer to
    with pytest.raises(FileNotFoundError, match="task.json"):
        read_task_spec(tmp_path / "images")
    prompts, _ = load_prompts(paths["labeled"])
    rows = json.loads(paths["labeled"].read_text())
    assert [p.truth for p in prompts] == [r["truth"] for r in rows] and prompts[0].truth["task"] == "color_grid"
    assert json.loads((tmp_path / "task.json").read_text())["false_step_share"] == 0.5
    rows[0]["truth"] = "not an object"
    paths["labeled"].write_text(json.dumps(rows))
    kept, report = load_prompts(paths["labeled"])
    assert len(kept) == 2 and report.skipped == {"truth is not an object": 1}
    with pytest.raises(ValueError, match="kinds"):
        TaskSpec(kinds=("sum",))


def _sample(text: str, scores: list[float] | None = None) -> Sample:
    return Sample("p", text, 10, True, 0, step_scores=scores or [])


def _group() -> PromptRollouts:
    """Two sound, two flawed and one wrong response, each once (and one sound duplicate)."""
    sound = respond(GOLD)
    padded = respond(["The grid has 3 rows and 3 columns."] + GOLD)
    flawed1 = respond(["Score of red: 1 x 3 = 3."] + GOLD[1:])
    flawed2 = respond(GOLD[:1] + ["Score of green: 3 x 1 = 3."] + GOLD[2:])
    wrong = respond(GOLD, "12")
    scores = {sound: [0.9], padded: [0.4], flawed1: [0.5], flawed2: [0.2], wrong: [0.95]}
    group = PromptRollouts(PROMPT, [_sample(t, scores[t]) for t in (sound, flawed1, padded, flawed2, wrong, sound)])
    mark_correct([group])
    return group


def test_figures_of_a_prompt_with_sound_and_flawed_responses() -> None:
    group = _group()
    assert [s.process for s in group.samples] == [
        "process_correct", "flawed_correct", "process_correct", "flawed_correct", "wrong", "process_correct",
    ]  # fmt: skip
    assert flaw_rate([group]) == 2 / 5
    assert strict_accuracy([group]) == 1.0 and strict_accuracy([PromptRollouts(PROMPT, group.samples[1:])]) == 0.0
    # pairs (sound, flawed): 0.9 beats 0.5 and 0.2, 0.4 loses to 0.5 and beats 0.2: 3 of 4
    pairwise = prm_pairwise_accuracy([group], ScoreAggregation.MIN, seed=0)
    assert pairwise.accuracy == 0.75 and pairwise.pairs == 4 and pairwise.low == pairwise.high == 0.75
    without_truth = PromptRollouts(Prompt("q", "x", ("a.png",), "11"), [_sample(respond(GOLD))])
    mark_correct([without_truth])
    assert without_truth.samples[0].process is None and strict_accuracy([without_truth]) is None
    assert prm_pairwise_accuracy([without_truth], ScoreAggregation.MIN, seed=0) is None


def test_selection_quality_beside_random_k_and_the_oracle() -> None:
    group = _group()
    top = select_training_examples([group], SelectionSpec(SelectionRule.PRM_TOP_K, k=2), seed=0)
    # distinct correct: sound, flawed1, padded, flawed2; PRM top 2 by score: sound (0.9), flawed1 (0.5)
    quality = selection_quality([group], top, k=2)
    assert quality.selected == 0.5 and quality.random_k == 0.5 and quality.oracle == 1.0
    oracle = select_training_examples([group], SelectionSpec(SelectionRule.ORACLE_TOP_K, k=3), seed=0)
    assert [ex.response for ex in oracle][:2] == [group.samples[0].text, group.samples[2].text]
    assert selection_quality([group], oracle, k=3).selected == 2 / 3
    # beyond random draws of as many: top-2 kept 1 sound where 2 x 2/4 were expected; oracle-3, 2 where 1.5 were
    assert quality.advantage.value == 0.0
    assert selection_quality([group], oracle, k=3).advantage.value == pytest.approx(0.5 / 3)
    # two prompts, each 2 picked, 1 and 0 beyond chance: 0.25 per response, residuals +-0.5, half-width 1.96 x 0.25
    pooled = Advantage().add(1.0, 2.0) + Advantage().add(0.0, 2.0)
    assert pooled.value == 0.25 and pooled.interval() == pytest.approx((0.25 - 0.49, 0.25 + 0.49))
    assert selected_data_quality(
        [{"selected": 2, **quality.to_json()}, {"selected": 3, **selection_quality([group], oracle, k=3).to_json()}]
    )["selected_advantage"] == pytest.approx(0.5 / 5)
    sound = select_training_examples([group], SelectionSpec(SelectionRule.ORACLE_SOUND, k=3), seed=0)
    assert sorted(ex.response for ex in sound) == sorted([group.samples[0].text, group.samples[2].text])
    flawed_only = PromptRollouts(group.prompt, [group.samples[1], group.samples[3]])
    assert select_training_examples([flawed_only], SelectionSpec(SelectionRule.ORACLE_SOUND, k=2), seed=0) == []
    assert selection_quality([group], [], k=2) is None


def test_oracle_selection_needs_ground_truth(tiny_data: dict[str, Path]) -> None:
    cfg = load_config(
        None,
        [
            "loop.eval_test=false",
            "model.path=m",
            f"data.labeled={tiny_data['labeled']}",
            f"data.validation={tiny_data['validation']}",
            "loop.selection=oracle_top_k",
        ],
    )
    prompts, _ = load_prompts(tiny_data["labeled"])
    check_ground_truth(cfg, {"labeled": prompts, "unlabeled": []})
    bare = [Prompt(p.id, p.question, p.images, p.answer) for p in prompts]
    with pytest.raises(ConfigError, match=r"loop\.selection: oracle_top_k .* 24 of 24 data\.labeled prompts"):
        check_ground_truth(cfg, {"labeled": bare, "unlabeled": []})
    sound = cfg.model_copy(update={"loop": cfg.loop.model_copy(update={"selection": SelectionRule.ORACLE_SOUND})})
    with pytest.raises(ConfigError, match=r"loop\.selection: oracle_sound .* 24 of 24 data\.labeled prompts"):
        check_ground_truth(sound, {"labeled": bare, "unlabeled": []})
    group = PromptRollouts(bare[0], [Sample(bare[0].id, "# Answer\n\n1", 3, True, 0, correct=True)])
    with pytest.raises(ValueError, match="needs ground truth"):
        select_training_examples([group], SelectionSpec(SelectionRule.ORACLE_TOP_K), seed=0)


def test_step_labels_are_scored_by_how_they_separate_true_from_false_steps() -> None:
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0 and auc([0.5], [0.5]) == 0.5 and auc([0.1], [0.9]) == 0.0
    assert auc([0.3, 0.7], [0.5]) == 0.5 and auc([], [0.1]) is None
    flawed = ["Score of red: 1 x 3 = 3."] + GOLD[1:4] + [GOLD[4] + "\n\n# Answer\n\n11"]
    separation = step_label_separation([("p", flawed, [0.2, 0.9, 0.8, 0.7, 1.0], TRUTH), ("q", GOLD, [1.0] * 5, None)])
    assert separation["false_steps"] == 1 and separation["true_steps"] == 4 and separation["auc"] == 1.0
    assert separation["mean_label_false"] == 0.2 and step_label_separation([("q", GOLD, [1.0] * 5, None)]) is None
    assert separation["within_prompt_auc"] is None  # no true step at the false one's position of the same prompt
    # the same prompt's gold chain: its first step (0.1) against the miscount (0.2); a second prompt's does not count
    labelled = [("p", flawed, [0.2, 0.9, 0.8, 0.7, 1.0], TRUTH), ("p", GOLD, [0.1] * 5, TRUTH)]
    within = step_label_separation([*labelled, ("r", GOLD, [0.9] * 5, TRUTH)])
    assert within["within_prompt_auc"] == 0.0 and within["within_prompt_pairs"] == 1 and within["auc"] > 0.5


def test_the_labels_ranked_as_a_prm_would_rank_them() -> None:
    flawed = ["Score of red: 1 x 3 = 3."] + GOLD[1:4] + [GOLD[4] + "\n\n# Answer\n\n11"]
    sound = GOLD[:4] + [GOLD[4] + "\n\n# Answer\n\n11"]
    labelled = [
        ("p", sound, [0.6, 0.7, 0.8, 0.9, 1.0], TRUTH, True),
        ("p", flawed, [0.2, 0.9, 0.8, 0.7, 1.0], TRUTH, True),
        ("p", flawed, [0.9, 0.9, 0.9, 0.9, 0.0], TRUTH, False),  # a wrong answer is no flawed-correct response
        ("q", sound, [0.1] * 5, TRUTH, True),  # a prompt without a flawed response has no pair
    ]
    assert labels_as_prm(labelled) == {"pairwise_accuracy": 1.0, "pairs": 1}
    assert labels_as_prm([("p", flawed, [0.7] * 5, TRUTH, True), *labelled[:1]])["pairwise_accuracy"] == 0.0
    assert labels_as_prm([(k, st, lb, None, ok) for k, st, lb, _, ok in labelled]) is None


def test_ground_truth_is_not_part_of_a_prompts_identity() -> None:
    bare = Prompt(PROMPT.id, PROMPT.question, PROMPT.images, PROMPT.answer)
    assert bare == PROMPT and hash(bare) == hash(PROMPT) and bare.truth is None


def test_a_total_step_must_add_the_true_terms() -> None:
    scores = GOLD[:3]
    assert check(scores + ["Total: 6 + 4 + 1 = 11."]).process == Process.PROCESS_CORRECT
    assert check(scores + ["Total: 4 + 1 + 6 = 11."]).process == Process.PROCESS_CORRECT  # any order
    assert check(scores + ["Total: 6 + 5 + 1 = 11."]).process == Process.FLAWED_CORRECT  # the sum of other terms
    assert check(scores + ["Total: 6 + 4 + 1 = 12."], answer="12").process == Process.WRONG
