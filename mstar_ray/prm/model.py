"""The PRM: a VLM backbone (the policy's architecture, without its LM head) and a value head read at step ends.

Each step of a response (with its separator) is tokenized on its own, so the token that ends a step is known
exactly, whatever the tokenizer would merge across a step boundary. Training and scoring encode responses the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, ProcessorMixin

from mstar_ray.config.checks import check_remote_code
from mstar_ray.core.records import Prompt
from mstar_ray.core.steps import STEP_SEPARATOR
from mstar_ray.models.encoding import TEXT_KEYS, collate, prompt_images, prompt_text
from mstar_ray.models.freeze import freeze_vision_tower
from mstar_ray.models.loading import load_policy

VALUE_HEAD_FILE = "value_head.safetensors"
PRM_META_FILE = "prm_config.json"


@dataclass(frozen=True)
class StepLabeledExample:
    """A response split into steps with one label in [0, 1] per step, to train the PRM on."""

    prompt: Prompt
    steps: list[str]
    labels: list[float]  # one per step


class ProcessRewardModel(torch.nn.Module):
    """Backbone hidden states -> one logit per token; the PRM's step score is sigmoid(logit) at a step's end."""

    def __init__(self, backbone: torch.nn.Module, seed: int = 0) -> None:
        """`seed` draws the fresh value head (not the process's random state, which differs between processes)."""
        super().__init__()
        self.backbone = backbone
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.value_head = torch.nn.Linear(backbone.config.get_text_config().hidden_size, 1)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, dtype: str = "float32", trust_remote_code: bool = False, seed: int = 0
    ) -> ProcessRewardModel:
        """A PRM directory (backbone + value head), or a policy checkpoint (its base model and a fresh value head
        drawn from `seed`)."""
        head = Path(path) / VALUE_HEAD_FILE
        if head.is_file():
            check_remote_code(path, trust_remote_code)
            backbone = AutoModel.from_pretrained(path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code)
            model = cls(backbone)
            model.value_head.load_state_dict(load_file(str(head)))
        else:
            policy = load_policy(path, dtype, trust_remote_code)
            model = cls(policy.base_model, seed)  # everything but the LM head
        model.value_head.to(getattr(torch, dtype))
        return model

    def forward(self, step_index: torch.Tensor | None = None, **inputs: torch.Tensor) -> torch.Tensor:
        """Logits at `step_index` rows of (batch, position), shape (N,); every token's (B, T) when it is None."""
        hidden = self.backbone(**inputs).last_hidden_state  # (B, T, H)
        if step_index is not None:
            hidden = hidden[step_index[:, 0], step_index[:, 1]]  # (N, H)
        return self.value_head(hidden).squeeze(-1)

    def freeze_vision(self) -> int:
        """Stop gradients into the vision tower; returns how many parameters were frozen."""
        return freeze_vision_tower(self.backbone)

    def save(self, out_dir: str | Path, processor: ProcessorMixin, state: dict[str, torch.Tensor], meta: dict) -> None:
        """Write backbone, value head, processor and metadata so that `from_pretrained(out_dir)` reloads it."""
        out = Path(out_dir)
        backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
        self.backbone.save_pretrained(out, state_dict=backbone)
        head = {k.removeprefix("value_head."): v.contiguous() for k, v in state.items() if k.startswith("value_head.")}
        save_file(head, str(out / VALUE_HEAD_FILE))
        processor.save_pretrained(out)
        (out / PRM_META_FILE).write_text(json.dumps(meta, indent=2))


def encode_prompt(processor: ProcessorMixin, prompt: Prompt) -> dict[str, torch.Tensor]:
    """The prompt's model inputs (its images processed), which every response to it starts with."""
    features = processor(text=[prompt_text(processor, prompt)], images=prompt_images([prompt]), return_tensors="pt")
    return {k: torch.as_tensor(v) for k, v in features.items() if k in TEXT_KEYS or torch.is_tensor(v)}


def encode_steps(
    processor: ProcessorMixin,
    prompt: Prompt,
    steps: Sequence[str],
    encoded_prompt: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Prompt (with image) and the steps as one sequence; `step_ends` holds where each step is read: its last
    token, which for every step but the final one is the blank-line separator that ends it. `encoded_prompt`
    (`encode_prompt` of this prompt) saves processing the prompt's images again; it is not modified."""
    encoded = dict(encoded_prompt if encoded_prompt is not None else encode_prompt(processor, prompt))
    tokenizer = processor.tokenizer
    pieces, ends, length = [], [], encoded["input_ids"].shape[-1]
    for i, step in enumerate(steps):
        text = step + (STEP_SEPARATOR if i < len(steps) - 1 else "")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        pieces.extend(ids)
        length += len(ids)
        ends.append(length - 1)  # an empty step reads where the previous one ended
    added = torch.tensor([pieces], dtype=encoded["input_ids"].dtype)
    for key in TEXT_KEYS:
        if key in encoded:
            fill = added if key == "input_ids" else torch.full_like(added, 1 if key == "attention_mask" else 0)
            encoded[key] = torch.cat([encoded[key], fill], dim=-1)
    encoded["step_ends"] = torch.tensor(ends)
    return encoded


def collate_steps(batch: Sequence[dict[str, torch.Tensor]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded model inputs plus `step_index` (N, 2) rows of (example, position) for every step."""
    rows = [{k: v for k, v in ex.items() if k not in ("step_ends", "step_labels")} for ex in batch]
    out = collate(rows, pad_token_id)
    out["step_index"] = torch.cat(
        [torch.stack([torch.full_like(ex["step_ends"], i), ex["step_ends"]], dim=1) for i, ex in enumerate(batch)]
    )
    if "step_labels" in batch[0]:
        out["step_labels"] = torch.cat([ex["step_labels"] for ex in batch])
    return out
