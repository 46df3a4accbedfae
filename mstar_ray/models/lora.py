"""Low-rank adapters (peft) on the policy's language model, and the merged weights the rollout engines need.

The trainer holds the adapters; the engines and checkpoints hold a plain model of the original architecture. So
every sync and save reads the policy through `policy_weights`: each adapted layer's weight becomes
`W + scale * B @ A` under its original name, and the adapters' own tensors are left out.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from mstar_ray.config import LoRAConfig
from mstar_ray.models.freeze import VISION_MODULES, is_vision_encoder_weight

PEFT_PREFIX = "base_model.model."
# Modules under a vision tower, top-level (MiniCPM-V's `vpm`) or nested (`model.visual`), never get adapters.
VISION_EXCLUDE = rf"(.*\.)?({'|'.join(sorted(VISION_MODULES))})\..*"
BASE_LAYER = ".base_layer"


def apply_lora(model: torch.nn.Module, cfg: LoRAConfig) -> torch.nn.Module:
    """Wrap `model` with adapters on `cfg.target_modules` outside the vision tower; only the adapters train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        exclude_modules=VISION_EXCLUDE,
    )
    return get_peft_model(model, config)


def check_lora_targets(model_path: str, cfg: LoRAConfig, trust_remote_code: bool = False) -> None:
    """Fail before any actor starts when `train.lora.target_modules` names no linear layer of the language model,
    or an embedding or LM head (tied to each other in many checkpoints, where an adapter's update would be lost).
    The model is built on the meta device: no weights are read."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    banned = {"lm_head", "embed_tokens", "wte", "word_embeddings"}.intersection(cfg.target_modules)
    if banned:
        raise ValueError(f"train.lora.target_modules: adapters on {sorted(banned)} are not supported")
    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config, trust_remote_code=trust_remote_code)
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not is_vision_encoder_weight(name + ".weight")
    }
    if not names.intersection(cfg.target_modules):
        raise ValueError(
            f"train.lora.target_modules {list(cfg.target_modules)} match no linear layer of {model_path}'s language "
            f"model; its layers include {sorted(names)[:12]}"
        )


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
def policy_weights(
    module: torch.nn.Module, tensors: Iterable[tuple[str, torch.Tensor]], merge: bool = True
) -> dict[str, torch.Tensor]:
    """`tensors` (named parameters or a state dict of `module`) under the original names, adapters merged in
    (without `merge`: the base weights, which have the merged weights' names, shapes and dtypes)."""
    if not is_lora(module):
        return dict(tensors)
    merged = {}
    for prefix, layer in _lora_layers(module) if merge else ():
        delta = sum(layer.get_delta_weight(adapter) for adapter in layer.active_adapters)
        weight = layer.base_layer.weight
        merged[f"{prefix}{BASE_LAYER}.weight"] = (weight + delta).to(weight.dtype)  # adapters may be kept in fp32
    return {original_name(name): merged.get(name, value) for name, value in tensors if ".lora_" not in name}


def adapted_names(module: torch.nn.Module) -> frozenset[str]:
    """Original names of the weights that training changes through adapters."""
    return frozenset(original_name(f"{prefix}{BASE_LAYER}.weight") for prefix, _ in _lora_layers(module))
