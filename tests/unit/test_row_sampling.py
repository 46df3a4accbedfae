"""Per-sequence sampling on the transformers backend: a prompt's samples depend on its seed, not on its batch."""

from __future__ import annotations

import pytest
import torch

from mstar_ray.config.io import load_config
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.loop.datasets import load_datasets
from mstar_ray.rollout.hf_engine import TransformersRolloutEngine
from mstar_ray.rollout.row_sampling import PerSequenceSampling, filter_logits


def test_filtering_keeps_the_top_k_and_the_smallest_nucleus_reaching_top_p() -> None:
    scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda s: torch.isfinite(s)[0].tolist()  # noqa: E731
    assert kept(filter_logits(scores, 1.0, 2, 1.0)) == [True, True, False, False]
    assert kept(filter_logits(scores, 1.0, 0, 0.8)) == [True, True, False, False]  # 0.5 + 0.3 reaches 0.8
    assert kept(filter_logits(scores, 1.0, 0, 0.81)) == [True, True, True, False]
    assert kept(filter_logits(scores, 1.0, 0, 0.1)) == [True, False, False, False]  # the top token always stays
    assert torch.allclose(filter_logits(scores, 0.5, 0, 1.0), scores * 2)


def test_gumbel_noise_samples_the_softmax_and_each_row_follows_its_own_seed() -> None:
    logits = torch.log(torch.tensor([0.6, 0.3, 0.1])).repeat(4000, 1)
    sampler = PerSequenceSampling(range(4000), 1.0, 0, 1.0, torch.device("cpu"))
    picks = sampler(torch.zeros(4000, 1, dtype=torch.long), logits).argmax(-1)
    shares = torch.bincount(picks, minlength=3).float() / 4000
    assert torch.allclose(shares, torch.tensor([0.6, 0.3, 0.1]), atol=0.03)
    alone = PerSequenceSampling([17], 1.0, 0, 1.0, torch.device("cpu"))(torch.zeros(1, 1, dtype=torch.long), logits[:1])
    assert alone.argmax(-1).item() == picks[17].item()  # row 17 in a batch of 4000 or alone: the same draw


@pytest.fixture(scope="module")
def prompts(tiny_data, tiny_model):
    cfg = load_config(None, [f"model.path={tiny_model}", f"data.labeled={tiny_data['labeled']}",
                             f"data.validation={tiny_data['validation']}", "loop.eval_test=false"])  # fmt: skip
    return load_datasets(cfg).labeled[:6]


def test_samples_do_not_depend_on_the_batch_size_or_the_other_prompts(tiny_model, prompts) -> None:
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=24, seed=5)
    wide = TransformersRolloutEngine(str(tiny_model), sequences_per_call=64).generate(prompts, params)
    narrow_engine = TransformersRolloutEngine(str(tiny_model), sequences_per_call=4)
    narrow = narrow_engine.generate(prompts, params)
    texts = lambda groups: {g.prompt.id: [s.text for s in g.samples] for g in groups}  # noqa: E731
    assert texts(wide) == texts(narrow)
    shuffled = narrow_engine.generate(prompts[3:] + prompts[:1], params)  # other prompts, another order
    assert all(texts(shuffled)[pid] == texts(wide)[pid] for pid in texts(shuffled))
    assert any(len(set(v)) > 1 for v in texts(wide).values())  # it samples: a prompt's K responses differ
    other_seed = narrow_engine.generate(prompts, params.with_(seed=6))
    assert texts(other_seed) != texts(wide)
