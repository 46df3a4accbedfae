"""What every actor sets up in its process before it loads a model: torch threads and, on request, deterministic
kernels."""

from __future__ import annotations

import math

import torch

from mstar_ray.core.determinism import use_deterministic_kernels


def configure_process(threads: int, reserved_cpus: float, deterministic: bool) -> None:
    """Use `threads` intra-op threads (0: the actor's CPU reservation rounded up); `deterministic` is
    `run.deterministic`."""
    torch.set_num_threads(threads or max(1, math.ceil(reserved_cpus)))
    if deterministic:
        use_deterministic_kernels()
