"""Checks of a whole config and of the data it loads: each names the keys involved, changes nothing, and runs
before any cluster resource is taken (`check_config` when the config is built, `preflight` once data is loaded)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mstar_ray.benchmarks.registry import BENCHMARKS
from mstar_ray.config import PRM_RULES, ConfigError, MStarConfig, RolloutBackend, TemperatureCriterion
from mstar_ray.models.loading import check_remote_code
from mstar_ray.models.lora import check_lora_targets
from mstar_ray.resources import check_fits, check_layout, check_vllm

if TYPE_CHECKING:
    from mstar_ray.data.splits import Datasets


def check_config(cfg: MStarConfig) -> None:
    """Rules between sections: what needs a PRM, the data each stage needs, resources, optional packages."""
    if cfg.loop.top_k > cfg.rollout.samples_per_prompt:
        raise ValueError(
            f"loop.top_k ({cfg.loop.top_k}) is larger than rollout.samples_per_prompt "
            f"({cfg.rollout.samples_per_prompt}): cannot keep more responses than are sampled"
        )
    needs_prm = [
        ("loop.selection", cfg.loop.selection in PRM_RULES),
        (
            "temperature.auto with criterion reward_pass_at_2",
            cfg.temperature.auto and cfg.temperature.criterion == TemperatureCriterion.REWARD_PASS_AT_2,
        ),
        ("loop.mixin_unlabeled", cfg.loop.mixin_unlabeled),
    ]
    for key, needed in needs_prm:
        if needed and not cfg.prm.enabled:
            raise ValueError(f"{key} needs a process reward model: set prm.enabled=true")
    if cfg.loop.mixin_unlabeled and not cfg.data.unlabeled:
        raise ValueError("loop.mixin_unlabeled is true but data.unlabeled is not set")
    if cfg.temperature.auto and not cfg.temperature.grid:
        raise ValueError("temperature.grid is empty: list the temperatures to try")
    if any(t <= 0 for t in cfg.temperature.grid):
        raise ValueError("temperature.grid: temperatures must be above 0 (greedy is measured separately)")
    if cfg.seed_sft.enabled and not cfg.data.seed_cot:
        raise ValueError("seed_sft.enabled is true but data.seed_cot is not set")
    if cfg.loop.eval_test is True and cfg.data.test is None:
        raise ValueError("loop.eval_test is true but data.test is not set (set it, or loop.eval_test=false)")
    for name in cfg.eval.benchmarks:
        if name not in BENCHMARKS:
            raise ValueError(f"eval.benchmarks.{name}: unknown benchmark; choose from {', '.join(BENCHMARKS)}")
    if cfg.train.lora.enabled and cfg.train.zero_stage == 3:
        raise ValueError("train.lora.enabled needs train.zero_stage <= 2 (adapters are merged on rank 0 to sync)")
    if Path(cfg.model.path).is_dir():  # a path on the cluster's shared storage may not exist on a client
        check_remote_code(cfg.model.path, cfg.model.trust_remote_code)
    gpu_users = [cfg.resources.gpus_per_rollout_worker > 0, cfg.resources.gpus_per_trainer > 0]
    if any(gpu_users) and cfg.model.dtype == "float16":
        raise ValueError("model.dtype float16 is not supported for training; use bfloat16")
    if cfg.rollout.backend == RolloutBackend.VLLM:
        check_vllm(cfg)
    check_layout(cfg)
    for key, package in (("monitor.wandb_project", "wandb"), ("monitor.mlflow_experiment", "mlflow")):
        if getattr(cfg.monitor, key.split(".")[1]) and importlib.util.find_spec(package) is None:
            raise ValueError(f"{key} is set but `{package}` is not installed (pip install {package})")
    if cfg.ray.address is not None and cfg.ray.num_cpus is not None:
        raise ValueError("ray.num_cpus applies only to an in-process Ray (ray.address: null)")
    if cfg.ray.num_cpus is not None and not os.environ.get("RAY_ADDRESS"):  # sizes an in-process Ray only
        check_fits(cfg, {"CPU": float(cfg.ray.num_cpus)})


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
