"""What the actors of a run reserve, and whether that fits a cluster; checked before any actor starts."""

from __future__ import annotations

from mstar_ray.config import ConfigError, MStarConfig


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
