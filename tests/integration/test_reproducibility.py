"""Seeds from identity on real rollout actors: a prompt gets the same samples on 1 or 2 workers (transformers)."""

from __future__ import annotations

import pytest

from mstar_ray.config.io import load_config
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.groups.cluster import connect_ray
from mstar_ray.groups.rollout import RolloutGroup
from mstar_ray.loop.datasets import load_datasets

pytestmark = pytest.mark.slow


def test_samples_are_the_same_on_one_or_two_rollout_workers(ray_cluster, tiny_data, tiny_model) -> None:
    texts = []
    for workers, per_call in ((1, 256), (2, 8)):
        cfg = load_config(
            None,
            [
                f"model.path={tiny_model}",
                f"data.labeled={tiny_data['labeled']}",
                f"data.validation={tiny_data['validation']}",
                "loop.eval_test=false",
                "resources.torch_threads=1",
                "resources.cpus_per_rollout_worker=0.5",
                f"resources.rollout_workers={workers}",
                f"rollout.sequences_per_call={per_call}",
            ],
        )
        connect_ray(cfg)
        group = RolloutGroup(cfg, str(tiny_model))
        try:
            prompts = load_datasets(cfg).labeled[:9]
            rollouts = group.generate(prompts, SamplingParams(n=4, temperature=1.0, max_new_tokens=32, seed=11))
            texts.append([[s.text for s in g.samples] for g in rollouts])
        finally:
            group.shutdown()
    assert texts[0] == texts[1]
    assert any(len(set(samples)) > 1 for samples in texts[0])  # sampled, not greedy
