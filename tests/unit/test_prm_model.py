"""The PRM model on a tiny Qwen2-VL: step-end positions, scores, freezing, save and reload; the label file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoProcessor

from mstar_ray.config import LabelKind
from mstar_ray.core.steps import split_steps
from mstar_ray.data.llava import load_prompts
from mstar_ray.models.freeze import is_vision_encoder_weight
from mstar_ray.prm.labeling import read_step_labels, write_step_labels
from mstar_ray.prm.model import ProcessRewardModel, StepLabeledExample, collate_steps, encode_prompt, encode_steps
from mstar_ray.prm.scorer import PRMScorer


@pytest.fixture(scope="module")
def seed_prompts(tiny_data: dict[str, Path]):
    return load_prompts(tiny_data["seed"])[0]


def test_step_ends_point_at_each_steps_last_token(tiny_model: Path, seed_prompts) -> None:
    processor = AutoProcessor.from_pretrained(tiny_model)
    prompt = seed_prompts[0]
    steps = split_steps(prompt.reference)
    encoded = encode_steps(processor, prompt, steps)
    ids, ends = encoded["input_ids"][0], encoded["step_ends"]
    assert len(ends) == len(steps) and ends[-1] == len(ids) - 1 and torch.all(ends[1:] > ends[:-1])
    for i, end in enumerate(ends.tolist()):
        upto = processor.tokenizer.decode(ids[: end + 1])
        assert upto.rstrip().endswith(steps[i].rstrip()) or upto.endswith("\n\n")
    assert encoded["attention_mask"].shape == ids.unsqueeze(0).shape and int(encoded["attention_mask"].sum()) == len(
        ids
    )


def test_a_prompt_encoded_once_serves_every_response_unchanged(tiny_model: Path, seed_prompts) -> None:
    processor = AutoProcessor.from_pretrained(tiny_model)
    prompt = seed_prompts[0]
    cached = encode_prompt(processor, prompt)
    before = {k: v.clone() for k, v in cached.items()}
    for response in (prompt.reference, "Count the red cells: there are 1.\n\nThe answer is 3."):
        steps = split_steps(response)
        fresh, reused = encode_steps(processor, prompt, steps), encode_steps(processor, prompt, steps, cached)
        assert fresh.keys() == reused.keys()
        for key in fresh:
            torch.testing.assert_close(reused[key], fresh[key])
    for key in before:  # the cache is the prompt's, whatever responses were appended to it
        torch.testing.assert_close(cached[key], before[key])


def test_scores_one_per_step_and_reload_identically(tiny_model: Path, seed_prompts, tmp_path: Path) -> None:
    processor = AutoProcessor.from_pretrained(tiny_model)
    model = ProcessRewardModel.from_pretrained(tiny_model).eval()
    vision = sum(p.numel() for n, p in model.backbone.named_parameters() if is_vision_encoder_weight(n))
    assert model.freeze_vision() == vision > 0
    # The encoder froze; the language model, the projector (Qwen2-VL's visual.merger) and the value head did not.
    assert all(p.requires_grad != is_vision_encoder_weight(n) for n, p in model.backbone.named_parameters())
    assert any(p.requires_grad for n, p in model.backbone.named_parameters() if ".merger." in n)

    torch.nn.init.normal_(model.value_head.weight)  # not the fresh head a reload would otherwise start from
    items = [(p, p.reference) for p in seed_prompts[:3]] + [(seed_prompts[3], "no steps at all")]
    encoded = [encode_steps(processor, p, split_steps(r)) for p, r in items]
    batch = collate_steps(encoded, processor.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(**batch)
        single = model(**collate_steps(encoded[2:3], processor.tokenizer.pad_token_id))
    assert logits.shape == (sum(len(split_steps(r)) for _, r in items),)
    first_two = len(split_steps(items[0][1])) + len(split_steps(items[1][1]))
    torch.testing.assert_close(logits[first_two : first_two + len(single)], single, atol=1e-4, rtol=1e-4)  # padding

    model.save(tmp_path / "prm", processor, model.state_dict(), {"label_kind": "soft"})
    assert json.loads((tmp_path / "prm" / "prm_config.json").read_text()) == {"label_kind": "soft"}
    scorer = PRMScorer(str(tmp_path / "prm"), batch_size=2)
    scores = scorer.score(items)
    assert [len(s) for s in scores] == [len(split_steps(r)) for _, r in items]
    flat = torch.tensor([v for row in scores for v in row])
    torch.testing.assert_close(flat, torch.sigmoid(logits), atol=1e-4, rtol=1e-4)


def test_step_label_file_round_trip_and_errors(seed_prompts, tmp_path: Path) -> None:
    examples = [
        StepLabeledExample(p, split_steps(p.reference), [0.5] * len(split_steps(p.reference))) for p in seed_prompts[:3]
    ]
    path = write_step_labels(tmp_path / "labels.jsonl", examples, LabelKind.SOFT)
    back = read_step_labels(path)
    assert [(e.prompt.id, e.steps, e.labels) for e in back] == [(e.prompt.id, e.steps, e.labels) for e in examples]
    assert json.loads(path.read_text().splitlines()[0])["label_kind"] == "soft"

    row = json.loads(path.read_text().splitlines()[0])
    for bad, message in [
        ("not json", r"bad\.jsonl:2: not a step-label row"),
        (json.dumps(row | {"labels": [0.5]}), "one label in"),
        (json.dumps(row | {"labels": [1.5] * len(row["steps"])}), "one label in"),
        (json.dumps(row | {"images": ["/no/such.png"]}), "image not found"),
    ]:
        (tmp_path / "bad.jsonl").write_text(json.dumps(row) + "\n" + bad + "\n")
        with pytest.raises(ValueError, match=message):
            read_step_labels(tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError):
        read_step_labels(tmp_path / "missing.jsonl")
