"""The typed iteration record and its metrics.jsonl line."""

from __future__ import annotations

from mstar_ray.core.records import Prompt, PromptRollouts, Sample, TrainExample
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.eval.validation import EvalResult
from mstar_ray.loop.record import IterationRecord, PseudoLabelStats, RolloutStats, TrainResult, selected_data_quality
from mstar_ray.sync.coordinator import SyncStats
from mstar_ray.training.sft import TrainStats

PROMPT = Prompt("p0", "How many?", ("/x.png",), "3")


def _rollouts() -> list[PromptRollouts]:
    samples = [Sample("p0", "# Answer\n\n3", 4, True, 2, correct=True), Sample("p0", "2", 6, True, 1, correct=False)]
    return [PromptRollouts(PROMPT, samples)]


def test_the_record_line_has_every_phase_under_flat_keys() -> None:
    params = SamplingParams(n=2, temperature=0.8)
    rollout = RolloutStats.of(_rollouts(), [TrainExample(PROMPT, "# Answer\n\n3")], params, 2)
    train = TrainResult.of(3, [TrainStats(2, 1, 0.4, 30, 5, 1e-3, [0.4]), TrainStats(2, 1, 0.6, 20, 5, 1e-3, [0.6])])
    sync = SyncStats(3, 2_000_000, 10, 1, False, 0.5, 0.1)
    val = EvalResult(10, 0.5, 0.8, 2, 0.4, 0.8, 0.6, 0.7)
    pseudo = PseudoLabelStats(prompts=4, accuracy=0.75, selected=2)
    line = IterationRecord(
        2, 0, 3, rollout, train, sync, 9, {"rollout": 1.0}, 2, pseudo, val, {"rollout-0": 1}
    ).to_json()
    assert line["rollout_weights_version"] == 1 and line["sample_accuracy"] == 0.5 and line["selected"] == 1
    assert line["mean_response_tokens"] == 5.0 and line["temperature"] == 0.8
    assert line["train_loss"] == 0.5 and line["train_tokens"] == 50 and line["optimizer_steps_in_stage"] == 5
    assert line["train_examples"] == 3 == line["selected"] + line["pseudo_labeled_selected"]
    assert line["pseudo_labeled_prompts"] == 4 and line["pseudo_label_accuracy"] == 0.75
    assert line["sync_bytes"] == 2_000_000 and line["sync_gb_per_s"] == 0.004 and line["sync_full"] is False
    assert line["val_greedy_accuracy"] == 0.5 and line["val_reward_pass_at_2"] == 0.7 and line["scored"] == 2
    assert line["recoveries"] == {"rollout-0": 1} and line["total_train_steps"] == 9


def test_an_iteration_without_training_or_validation_has_no_such_keys() -> None:
    params = SamplingParams(n=2)
    line = IterationRecord(
        1, 0, 2, RolloutStats.of(_rollouts(), [], params, 2), TrainResult(0, 0), SyncStats(2, 0, 0, 0, False, 0.0, 0.0),
        0, {}, None, None, None,
    ).to_json()  # fmt: skip
    assert line["train_examples"] == 0 and line["train_steps"] == 0 and "train_loss" not in line
    assert not any(k.startswith(("val_", "pseudo_")) for k in line) and "scored" not in line


def test_the_runs_selected_data_is_weighted_by_what_each_iteration_selected() -> None:
    records = [
        {"iteration": 0},
        {"iteration": 1, "selected": 10, "selected_process_correct": 0.5, "random_k_process_correct": 0.2,
         "oracle_process_correct": 0.6},
        {"iteration": 2, "selected": 30, "selected_process_correct": 0.1, "random_k_process_correct": 0.2,
         "oracle_process_correct": 0.2},
        {"iteration": 3, "selected": 0, "selected_process_correct": None},
    ]  # fmt: skip
    quality = selected_data_quality(records)
    assert quality["selected"] == 40 and abs(quality["selected_process_correct"] - 0.2) < 1e-12
    assert (
        abs(quality["random_k_process_correct"] - 0.2) < 1e-12 and abs(quality["oracle_process_correct"] - 0.3) < 1e-12
    )
    assert selected_data_quality([{"iteration": 1, "selected": 5}]) is None
