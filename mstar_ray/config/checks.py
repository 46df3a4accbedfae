"""Every cross-field rule of a config, run when it is built: each names the keys involved and changes nothing.

Also the check that a checkpoint named by the config ships no code of its own unless trusted (it reads the
checkpoint's config.json). Checks that need the loaded data or a model live in `mstar_ray.loop.preflight`.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mstar_ray.config.base import BENCHMARK_NAMES, BEST_METRICS, PRM_RULES, RolloutBackend, TemperatureCriterion
from mstar_ray.config.resources import check_fits, check_layout, check_vllm

if TYPE_CHECKING:
    from mstar_ray.config.schema import MStarConfig


def remote_code_classes(path: str | Path) -> dict[str, str]:
    """The checkpoint's `auto_map` (auto class -> module.Class of its own code); empty for native architectures."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return {}
    auto_map = json.loads(config.read_text()).get("auto_map", {})
    return auto_map if isinstance(auto_map, dict) else {}


def check_remote_code(path: str | Path, trust_remote_code: bool, key: str = "model.path") -> None:
    """Refuse a checkpoint that needs its own Python code unless remote code is explicitly trusted."""
    if remote_code_classes(path) and not trust_remote_code:
        raise ValueError(
            f"{key}: {path} ships its own modeling code (config.json auto_map); it runs on every worker that loads "
            "the model. Set model.trust_remote_code=true if you trust it"
        )


def check_best_checkpoint(cfg: MStarConfig) -> None:
    """checkpoint.best_metric names a validation figure that every checkpointed iteration measures."""
    metric, every, eval_every = cfg.checkpoint.best_metric, cfg.checkpoint.every, cfg.loop.eval_every
    if metric is None:
        return
    if metric not in BEST_METRICS:
        raise ValueError(f"checkpoint.best_metric: unknown figure {metric!r}; choose from {', '.join(BEST_METRICS)}")
    if metric == "val_reward_pass_at_2" and not cfg.prm.enabled:
        raise ValueError("checkpoint.best_metric=val_reward_pass_at_2 needs a process reward model: prm.enabled=true")
    n = cfg.loop.iterations
    checkpointed = [i for i in range(1, n + 1) if every and i % every == 0]
    unmeasured = [i for i in checkpointed if not eval_every or (i % eval_every and i != n)]
    if unmeasured:
        raise ValueError(
            f"checkpoint.best_metric={metric}: iterations {unmeasured[:5]} are checkpointed (checkpoint.every={every}) "
            f"but not validated (loop.eval_every={eval_every}), so they cannot be ranked; make checkpoint.every a "
            "multiple of loop.eval_every, or set checkpoint.best_metric=null"
        )


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
        if name not in BENCHMARK_NAMES:
            raise ValueError(f"eval.benchmarks.{name}: unknown benchmark; choose from {', '.join(BENCHMARK_NAMES)}")
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
    check_best_checkpoint(cfg)
    for key, package in (("monitor.wandb_project", "wandb"), ("monitor.mlflow_experiment", "mlflow")):
        if getattr(cfg.monitor, key.split(".")[1]) and importlib.util.find_spec(package) is None:
            raise ValueError(f"{key} is set but `{package}` is not installed (pip install {package})")
    if cfg.ray.address is not None and cfg.ray.num_cpus is not None:
        raise ValueError("ray.num_cpus applies only to an in-process Ray (ray.address: null)")
    if cfg.ray.num_cpus is not None and not os.environ.get("RAY_ADDRESS"):  # sizes an in-process Ray only
        check_fits(cfg, {"CPU": float(cfg.ray.num_cpus)})
