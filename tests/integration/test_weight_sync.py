"""Weight sync over the broadcast group on a real local Ray cluster (transformers engines, DeepSpeed on gloo)."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
import torch
from actor_probes import engine_weights
from transformers import AutoModelForImageTextToText

from mstar_ray.config.io import load_config
from mstar_ray.core.records import TrainExample
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.groups.rollout import RolloutGroup
from mstar_ray.groups.trainers import PolicyTrainerGroup
from mstar_ray.loop import stages
from mstar_ray.loop.datasets import load_datasets
from mstar_ray.models.freeze import is_vision_encoder_weight
from mstar_ray.rollout.engine import PartialWeightsError
from mstar_ray.sync.coordinator import WeightSync
from mstar_ray.sync.transport import WeightSyncError

pytestmark = pytest.mark.slow


def _config(data: dict[str, Path], model: Path, *extra: str):
    return load_config(
        None,
        [
            f"model.path={model}",
            f"data.labeled={data['labeled']}",
            f"data.validation={data['validation']}",
            f"data.seed_cot={data['seed']}",
            "loop.eval_test=false",
            "resources.torch_threads=1",
            "resources.cpus_per_rollout_worker=0.5",
            "resources.cpus_per_trainer=0.5",
            "train.lr=1e-3",
            "train.micro_batch_size=4",
            *extra,
        ],
    )


def _gold_examples(cfg) -> list[TrainExample]:
    return [TrainExample(p, p.reference) for p in load_datasets(cfg).seed_cot[:8]]


def test_zero3_sync_in_buckets_sends_a_frozen_vision_tower_once(ray_cluster, tiny_data, tiny_model) -> None:
    cfg = _config(
        tiny_data,
        tiny_model,
        "resources.rollout_workers=2",
        "resources.trainer_ranks=2",
        "train.zero_stage=3",
        "train.freeze_vision=true",
        "sync.bucket_mb=0.25",  # the 4 MB model travels in many buckets
    )
    rollout, trainers = RolloutGroup(cfg, str(tiny_model)), PolicyTrainerGroup(cfg, str(tiny_model))
    with pytest.raises(RuntimeError, match="trainer-0: train needs a training stage: call start_stage"):
        trainers.train(_gold_examples(cfg), epochs=1, seed=0)
    trainers.start_stage(stages.optim_spec(cfg, cfg.train.lr))
    sync = WeightSync(cfg.sync, trainers, rollout)

    first = sync.sync(1)
    params = dict(AutoModelForImageTextToText.from_pretrained(tiny_model).named_parameters())
    assert first.full and first.buckets > 4 and first.tensors == len(params)
    before = engine_weights(rollout.workers[1])

    trainers.train(_gold_examples(cfg), epochs=1, seed=0)
    second = sync.sync(2)
    vision = {name for name in params if is_vision_encoder_weight(name)}
    assert len(vision) > 10
    assert not second.full and second.tensors == len(params) - len(vision) and second.bytes < first.bytes

    trainer = ray.get(trainers.export_weights_ref())  # gathered from both ZeRO-3 partitions
    for worker in rollout.workers:
        held = engine_weights(worker)
        assert held.keys() == trainer.keys()
        assert [k for k in trainer if not torch.equal(held[k], trainer[k])] == []
    assert rollout.weights_versions() == [2, 2]
    moved = {k for k in before if not torch.equal(before[k], held[k])}
    assert moved and not moved & vision  # the language model trained, the frozen tower stayed
    trainers.shutdown()
    for worker in rollout.workers:
        ray.kill(worker)


def test_a_dead_engine_fails_the_sync_naming_it_and_no_engine_is_silently_mixed(
    ray_cluster, tiny_data, tiny_model
) -> None:
    cfg = _config(tiny_data, tiny_model, "resources.rollout_workers=2", "sync.timeout_s=10", "sync.bucket_mb=0.25")
    rollout, trainers = RolloutGroup(cfg, str(tiny_model)), PolicyTrainerGroup(cfg, str(tiny_model))
    sync = WeightSync(cfg.sync, trainers, rollout)
    assert sync.sync(1).version == 1

    ray.kill(rollout.workers[1])
    with pytest.raises(WeightSyncError, match="weight sync v2 failed on .*rollout-1: the actor died"):
        sync.sync(2)
    # The survivor got part of v2 before the source stopped: it refuses to sample until it is synced again.
    assert ray.get(rollout.workers[0].weights_version.remote()) is None
    prompt = load_datasets(cfg).validation[:1]
    with pytest.raises(PartialWeightsError, match="rollout-0 holds a partial weight update"):
        ray.get(rollout.workers[0].generate.remote(prompt, SamplingParams(max_new_tokens=4)))
    trainers.shutdown()
    ray.kill(rollout.workers[0])
