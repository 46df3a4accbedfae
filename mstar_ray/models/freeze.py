"""Freezing the vision tower of an image-text-to-text model (the policy's or the PRM's backbone)."""

from __future__ import annotations

import torch

# Attribute names that transformers' image-text-to-text models give their vision encoder.
VISION_MODULES = frozenset({"visual", "vision_tower", "vision_model", "vpm", "vision_encoder"})


def freeze_vision_tower(module: torch.nn.Module) -> int:
    """Stop gradients into every parameter under a vision-encoder submodule; returns how many values were frozen."""
    frozen = 0
    for name, param in module.named_parameters():
        if VISION_MODULES.intersection(name.split(".")):
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen
