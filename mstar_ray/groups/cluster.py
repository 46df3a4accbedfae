"""Joining the configured Ray cluster (or starting Ray in this process) and checking the run's actors fit it."""

from __future__ import annotations

import logging
import os

import ray

from mstar_ray.config import MStarConfig
from mstar_ray.config.resources import check_fits, check_prm_training_fits

log = logging.getLogger("mstar")


def connect_ray(
    cfg: MStarConfig, with_trainers: bool = True, prm_training_only: bool = False, log_to_driver: bool = True
) -> None:
    """Join the configured cluster (or the one this job was submitted to) or start Ray in this process, then check
    the actors fit. Without `log_to_driver`, what actors print stays out of this process's console (`mstar run`
    sends it to the run directory's log files instead)."""
    if not ray.is_initialized():
        if cfg.ray.address:
            ray.init(address=cfg.ray.address, log_to_driver=log_to_driver)
        elif os.environ.get("RAY_ADDRESS"):  # inside `ray job submit`, or pointed at a cluster by the environment
            log.info("joining the Ray cluster at RAY_ADDRESS=%s (ray.num_cpus is not used)", os.environ["RAY_ADDRESS"])
            ray.init(log_to_driver=log_to_driver)
        else:  # a single-node Ray inside this process: keep it on loopback
            ray.init(
                num_cpus=cfg.ray.num_cpus,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                log_to_driver=log_to_driver,
            )
    if prm_training_only:
        check_prm_training_fits(cfg, ray.cluster_resources())
    else:
        check_fits(cfg, ray.cluster_resources(), with_trainers)
