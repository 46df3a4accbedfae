"""Torch thread count for an actor process."""

from __future__ import annotations

import os

import torch


def set_torch_threads(threads: int) -> None:
    """Use `threads` intra-op threads (0: every core of the node; CPU phases alternate, so actors share)."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
