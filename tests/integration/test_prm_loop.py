"""The full recipe on a real local Ray cluster: PRM step labels from the pre-evolved policy, PRM training with
DeepSpeed, PRM actors scoring, PRM top-k selection, Reward-Pass@2, automatic temperature and unlabeled mix-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoModel

from mstar_ray.config.io import load_config
from mstar_ray.core.records import PromptRollouts, Sample
from mstar_ray.core.steps import split_steps
from mstar_ray.groups.cluster import connect_ray
from mstar_ray.loop.datasets import load_datasets
from mstar_ray.loop.driver import MStarRun
from mstar_ray.loop.run_dir import RunDir
from mstar_ray.models.freeze import is_vision_encoder_weight
from mstar_ray.toy.synthetic import TaskSpec, write_synthetic_dataset

pytestmark = pytest.mark.slow
N = 2  # completions per step prefix


@pytest.fixture(scope="module")
def prm_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    spec = TaskSpec(seed_size=16, labeled_size=24, validation_size=6, test_size=6, unlabeled_size=12)
    return write_synthetic_dataset(tmp_path_factory.mktemp("prm_data"), spec, seed=0)


def test_full_recipe_with_prm_temperature_and_mixin(ray_cluster, prm_data, tiny_model, tmp_path) -> None:
    d = prm_data
    cfg = load_config(
        None,
        [
            f"model.path={tiny_model}",
            f"data.seed_cot={d['seed']}",
            f"data.labeled={d['labeled']}",
            f"data.validation={d['validation']}",
            f"data.test={d['test']}",
            f"data.unlabeled={d['unlabeled']}",
            f"run.output_dir={tmp_path}",
            "resources.torch_threads=1",
            "resources.cpus_per_rollout_worker=0.5",
            "resources.cpus_per_trainer=0.5",
            "resources.cpus_per_prm_worker=0.5",
            "rollout.samples_per_prompt=4",
            "rollout.max_new_tokens=80",
            "train.lr=2e-4",
            "train.micro_batch_size=4",
            "seed_sft.enabled=true",
            "seed_sft.epochs=30",
            "seed_sft.lr=2e-3",
            "prm.enabled=true",
            "prm.label.prompts=6",
            "prm.label.responses_per_prompt=2",
            f"prm.label.completions_per_step={N}",
            "prm.train.epochs=4",
            "prm.train.lr=3e-4",
            "prm.train.micro_batch_size=4",
            "loop.iterations=2",
            "loop.interval=0.25",
            "loop.selection=prm_top_k",
            "loop.top_k=1",
            "loop.mixin_unlabeled=true",
            "loop.mixin_after=0.5",
            "temperature.auto=true",
            "temperature.every=2",
            "temperature.grid=[0.5, 1.0, 1.5]",
            "temperature.prompts=4",
        ],
    )
    connect_ray(cfg)
    run_dir = RunDir.create(cfg)
    loop = MStarRun(cfg, run_dir, load_datasets(cfg))
    summary = loop.fit()
    records = run_dir.read_metrics()

    # Monte-Carlo labels: one per step, completions' shares (multiples of 1/N), the last step = the response itself.
    labels_path = run_dir.path / "prm_labels.jsonl"
    rows = [json.loads(line) for line in labels_path.read_text().splitlines()]
    assert len(rows) >= 6 and all(Path(image).is_file() for r in rows for image in r["images"])
    prm_record = records[0]["prm"]
    assert prm_record["labels"]["responses"] == len(rows) and prm_record["labels"]["prompts"] == 6
    for row in rows:
        response = "\n\n".join(row["steps"])
        assert row["steps"] == split_steps(response) and len(row["labels"]) == len(row["steps"])
        assert all(v * N == int(v * N) for v in row["labels"][:-1]) and row["labels"][-1] in (0.0, 1.0)
    assert sum(len(r["steps"]) > 1 for r in rows) >= len(rows) // 2  # the seed-SFT policy writes steps

    # PRM training: loss fell, language weights and the value head changed, the frozen vision tower did not.
    losses = prm_record["train"]["epoch_losses"]
    assert len(losses) == 4 and losses[-1] < losses[0]
    prm_dir = run_dir.path / "prm"
    policy = dict(AutoModel.from_pretrained(run_dir.checkpoints / "pre_evolved").named_parameters())
    prm = dict(AutoModel.from_pretrained(prm_dir).named_parameters())
    vision = [n for n in prm if is_vision_encoder_weight(n)]
    language = [n for n in prm if not is_vision_encoder_weight(n)]
    assert vision and all(torch.equal(prm[n], policy[n]) for n in vision)
    assert all(not torch.equal(prm[n], policy[n]) for n in language)
    assert load_file(str(prm_dir / "value_head.safetensors"))["weight"].shape == (1, 128)
    assert json.loads((prm_dir / "prm_config.json").read_text())["label_kind"] == "soft"

    # Scoring through the PRM actors: one score in (0, 1) per step.
    group = PromptRollouts(loop.data.test[0], [Sample("t", r, 1, True, 0) for r in ("a\n\nb\n\n# Answer\n\n3", "x")])
    assert loop.prm.score([group]) == 2
    assert [len(s.step_scores) for s in group.samples] == [2, 1]
    assert all(0.0 < v < 1.0 for s in group.samples for v in s.step_scores)

    # Temperature search before iteration 1 only (every 2 of 2 iterations), on the whole grid.
    searches = [r["temperature_search"] for r in records if "temperature_search" in r]
    assert len(searches) == 1 and searches[0]["iteration"] == 1
    assert [p["temperature"] for p in searches[0]["curve"]] == [0.5, 1.0, 1.5]
    assert all(p["reward_pass_at_2"] is not None for p in searches[0]["curve"])
    iterations = [r for r in records if "prompts" in r]
    assert [r["temperature"] for r in iterations] == [searches[0]["chosen"]] * 2
    assert summary["final_temperature"] == searches[0]["chosen"]
    assert "adapt_temperature" in iterations[0]["seconds"] and "adapt_temperature" not in iterations[1]["seconds"]
    events = EventAccumulator(str(run_dir.path / "tensorboard"))  # the search reached the metric sinks too
    events.Reload()
    assert [e.value for e in events.Scalars("temperature_search/chosen")] == [searches[0]["chosen"]]

    # PRM selection scored the correct samples; unlabeled prompts joined after half the iterations.
    for r in iterations:
        assert set(r["seconds"]) >= {"rollout", "verify", "score", "select", "train", "sync", "evaluate"}
        assert r["selected"] <= r["prompts"]  # top-1 per labeled prompt; pseudo-labelled ones are counted apart
        assert r["train_examples"] == r["selected"] + r.get("pseudo_labeled_selected", 0)
    assert "pseudo_labeled_prompts" not in iterations[0] and iterations[1]["pseudo_labeled_prompts"] > 0
    assert iterations[1]["pseudo_labeled_selected"] <= iterations[1]["pseudo_labeled_prompts"]
    assert 0.0 <= iterations[1]["pseudo_label_accuracy"] <= 1.0

    # Dynamics on validation, from the pre-evolved model on, with Reward-Pass@2 beside its random baseline.
    for r in [records[0], *iterations]:
        assert 0.0 <= r["val_reward_pass_at_2"] <= r["val_pass_at_k"] and 0.0 <= r["val_random_pass_at_2"] <= 1.0
        assert r["val_pass_at_k_minus_greedy"] == pytest.approx(r["val_pass_at_k"] - r["val_greedy_accuracy"])
    assert (run_dir.path / "dynamics.png").read_bytes()[:4] == b"\x89PNG"
    assert summary["final"]["reward_pass_at_2"] is not None

    # The synthetic rows carry their ground truth: every step checked, the figures beside the answer figures.
    assert records[0]["prm"]["labels"]["step_truth"]["true_steps"] >= 0  # None only for data without ground truth
    for r in [records[0], *iterations]:
        assert 0.0 <= r["val_strict_accuracy"] <= r["val_greedy_accuracy"]
    for stage in ("pre_evolved", "final"):
        assert 0.0 <= summary[stage]["strict_accuracy"] <= summary[stage]["greedy_accuracy"]
        responses = [
            json.loads(line) for line in (run_dir.path / f"test_responses_{stage}.jsonl").read_text().splitlines()
        ]
        assert [r["id"] for r in responses] == [p.id for p in loop.data.test]
        steps = [s for r in responses for s in r["steps"]]
        assert all(s["verdict"] in ("true", "false", None) and 0.0 < s["score"] < 1.0 for s in steps)
        assert all(r["process"] is not None for r in responses)
