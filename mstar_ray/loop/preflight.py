"""Checks that need the loaded data or the policy's own modules; run after loading, before any actor starts."""

from __future__ import annotations

from pathlib import Path

from mstar_ray.config import ConfigError, MStarConfig, RolloutBackend
from mstar_ray.loop.datasets import Datasets
from mstar_ray.models.lora import check_lora_targets


def preflight(cfg: MStarConfig, data: Datasets) -> None:
    """Checks that need the loaded data or the checkpoint's config."""
    if cfg.rollout.backend == RolloutBackend.VLLM:
        splits = (data.labeled, data.validation, data.test, data.seed_cot, data.unlabeled)
        prompts = [p for split in splits for p in split]
        prompts += [item.prompt for bench in data.benchmarks.values() for item in bench.items]
        most = max((len(p.images) for p in prompts), default=0)
        if most > cfg.rollout.vllm.max_images_per_prompt:
            raise ConfigError(
                f"a prompt has {most} images but rollout.vllm.max_images_per_prompt is "
                f"{cfg.rollout.vllm.max_images_per_prompt}: raise it to {most}"
            )
    if cfg.train.lora.enabled and Path(cfg.model.path).is_dir():
        check_lora_targets(cfg.model.path, cfg.train.lora, cfg.model.trust_remote_code)
