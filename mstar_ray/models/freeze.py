"""Freezing the vision encoder of an image-text-to-text model (the policy's or the PRM's backbone).

Only the encoder freezes: the projector that maps its features into the language model trains with the language
model in every family, whether it sits beside the encoder (LLaVA's and InternVL's `multi_modal_projector`,
Idefics3's `connector`) or inside it (Qwen2-VL's and Qwen2.5-VL's `visual.merger`).
"""

from __future__ import annotations

import torch

# Attribute names that transformers' image-text-to-text models give their vision encoder.
VISION_MODULES = frozenset({"visual", "vision_tower", "vision_model", "vpm", "vision_encoder"})
# Projectors that some families keep inside the vision module.
INNER_PROJECTORS = frozenset({"merger"})


def is_vision_encoder_weight(name: str) -> bool:
    """Whether the parameter named `name` belongs to the vision encoder (not to a projector inside it)."""
    parts = name.split(".")
    return bool(VISION_MODULES.intersection(parts)) and not INNER_PROJECTORS.intersection(parts)


def freeze_vision_tower(module: torch.nn.Module) -> int:
    """Stop gradients into every parameter of the vision encoder; returns how many values were frozen."""
    frozen = 0
    for name, param in module.named_parameters():
        if is_vision_encoder_weight(name):
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen
