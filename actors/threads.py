"""Torch thread count for an actor process."""

from __future__ import annotations

import math

import torch


def set_torch_threads(threads: int, reserved_cpus: float) -> None:
    """Use `threads` intra-op threads, or the actor's CPU reservation rounded up when `threads` is 0."""
    torch.set_num_threads(threads or max(1, math.ceil(reserved_cpus)))
