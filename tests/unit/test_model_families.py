"""Every model family of the factory through the pipeline's pieces, without Ray: reload with the Auto classes,
training batches with one and two images, greedy rollouts, PRM step scores and vision-encoder freezing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from mstar_ray.core.records import Prompt, TrainExample
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.core.steps import split_steps
from mstar_ray.data.llava import load_prompts
from mstar_ray.models.encoding import IGNORE_INDEX, collate, encode_example
from mstar_ray.models.freeze import VISION_MODULES, freeze_vision_tower
from mstar_ray.prm.model import ProcessRewardModel, collate_steps, encode_steps
from mstar_ray.rollout.hf_engine import TransformersRolloutEngine
from mstar_ray.toy.factory import FAMILIES, FAMILY_TABLE, build_tiny_model
from mstar_ray.toy.synthetic import corpus_texts


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    family = request.param
    return family, build_tiny_model(family, corpus_texts(n=300), tmp_path_factory.mktemp(family), seed=0)


@pytest.fixture(scope="module")
def prompts(tiny_data: dict[str, Path]) -> list[Prompt]:
    """A one-image prompt and a two-image one."""
    seed = load_prompts(tiny_data["seed"])[0]
    return [seed[0], dataclasses.replace(seed[1], images=(seed[1].images[0], seed[2].images[0]))]


def test_reloads_with_the_auto_classes(family_model) -> None:
    family, path = family_model
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert type(model) is FAMILY_TABLE[family].model_class
    assert "auto_map" not in json.loads((path / "config.json").read_text())  # native: no remote code
    assert 0.9e6 < sum(p.numel() for p in model.parameters()) < 1.2e6
    assert model.generation_config.eos_token_id == processor.tokenizer.eos_token_id


def test_a_batch_with_one_and_two_images_trains_the_language_model(family_model, prompts) -> None:
    _, path = family_model
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    encoded = [encode_example(processor, TrainExample(p, p.reference)) for p in prompts]
    for example, prompt in zip(encoded, prompts, strict=True):  # labels: the response and its end-of-turn token
        response = example["input_ids"][0][example["labels"][0] != IGNORE_INDEX]
        assert processor.tokenizer.decode(response) == prompt.reference + processor.tokenizer.eos_token
    batch = collate(encoded, processor.tokenizer.pad_token_id)

    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    text_weights = model.get_input_embeddings().weight
    assert text_weights.grad is not None and text_weights.grad.abs().sum() > 0
    with torch.no_grad():
        logits = model(**batch).logits
        # Padding (of text, and of Idefics3's per-example image stacks) leaves each example's logits as they were.
        for i, example in enumerate(encoded):
            alone = model(**collate([example], processor.tokenizer.pad_token_id)).logits[0]
            torch.testing.assert_close(logits[i, : len(alone)], alone, atol=1e-4, rtol=1e-4)
        # The model sees the images: other pixels, other logits.
        other = {**batch, "pixel_values": torch.randn_like(batch["pixel_values"])}
        assert not torch.allclose(logits, model(**other).logits)


def test_greedy_rollouts_of_one_and_two_image_prompts_are_deterministic(family_model, prompts) -> None:
    _, path = family_model
    engine = TransformersRolloutEngine(str(path))
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=6)
    first, second = engine.generate(prompts, params), engine.generate(prompts, params)
    assert [r.prompt.id for r in first] == [p.id for p in prompts]
    assert [len(r.samples) for r in first] == [1, 1]
    assert all(0 < s.num_tokens <= 6 for r in first for s in r.samples)
    assert [s.text for r in first for s in r.samples] == [s.text for r in second for s in r.samples]


def test_prm_reads_one_logit_per_step(family_model, prompts) -> None:
    _, path = family_model
    processor = AutoProcessor.from_pretrained(path)
    prm = ProcessRewardModel.from_pretrained(path).eval()
    steps = [split_steps(p.reference) for p in prompts]
    batch = collate_steps(
        [encode_steps(processor, p, s) for p, s in zip(prompts, steps, strict=True)], processor.tokenizer.pad_token_id
    )
    with torch.no_grad():
        logits = prm(**batch)
    assert logits.shape == (sum(len(s) for s in steps),) and torch.isfinite(logits).all()


def test_freezing_stops_only_the_vision_encoder(family_model) -> None:
    _, path = family_model
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert freeze_vision_tower(model) > 0
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(VISION_MODULES.intersection(name.split(".")) for name in frozen)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert any("embed_tokens" in name for name in trainable)
    assert any(part in name for name in trainable for part in ("projector", "connector", "merger"))
