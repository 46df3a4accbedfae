"""Low-rank adapters (peft) on the policy's language model, and the merged weights the rollout engines need.

The trainer holds the adapters; the engines and checkpoints hold a plain model of the original architecture. So
every sync and save reads the policy through `policy_weights`: each adapted layer's weight becomes
`W + scale * B @ A` under its original name, and the adapters' own tensors are left out.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from mstar_ray.config import LoRAConfig
from mstar_ray.models.freeze import VISION_MODULES

PEFT_PREFIX = "base_model.model."
BASE_LAYER = ".base_layer"


def apply_lora(model: torch.nn.Module, cfg: LoRAConfig) -> torch.nn.Module:
    """Wrap `model` with adapters on `cfg.target_modules` outside the vision tower; only the adapters train."""
    from peft import LoraConfig, get_peft_model

    vision = "|".join(sorted(VISION_MODULES))
    config = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        exclude_modules=rf".*\.({vision})\..*",
    )
    peft_model = get_peft_model(model, config)
    if not any(name for name, _ in _lora_layers(peft_model)):
        raise ValueError(f"train.lora.target_modules {list(cfg.target_modules)} matched no layer of the language model")
    return peft_model


def is_lora(module: torch.nn.Module) -> bool:
    """Whether `module` is a peft-wrapped policy."""
    from peft import PeftModel

    return isinstance(module, PeftModel)


def _lora_layers(module: torch.nn.Module) -> Iterable[tuple[str, torch.nn.Module]]:
    from peft.tuners.lora import LoraLayer

    return ((name, m) for name, m in module.named_modules() if isinstance(m, LoraLayer))


def original_name(name: str) -> str:
    """The parameter's name in the unwrapped model."""
    return name.removeprefix(PEFT_PREFIX).replace(BASE_LAYER + ".", ".")


@torch.no_grad()
def policy_weights(module: torch.nn.Module, tensors: Iterable[tuple[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """`tensors` (named parameters or a state dict of `module`) under the original names, adapters merged in."""
    if not is_lora(module):
        return dict(tensors)
    merged = {}
    for prefix, layer in _lora_layers(module):
        delta = sum(layer.get_delta_weight(adapter) for adapter in layer.active_adapters)
        merged[f"{prefix}{BASE_LAYER}.weight"] = layer.base_layer.weight + delta
    return {original_name(name): merged.get(name, value) for name, value in tensors if ".lora_" not in name}


def adapted_names(module: torch.nn.Module) -> frozenset[str]:
    """Original names of the weights that training changes through adapters."""
    return frozenset(original_name(f"{prefix}{BASE_LAYER}.weight") for prefix, _ in _lora_layers(module))
