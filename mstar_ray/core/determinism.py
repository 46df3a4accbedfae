"""A process's random state and kernels: seeded from the run's seed and a purpose, deterministic on request.

Seeds alone make the CPU repeat exactly. On GPUs some kernels reduce in an order that depends on timing (atomic
adds in embedding and indexing backward passes, cuBLAS split-K workspaces, cuDNN autotuning), so two runs of one
seed drift apart in the last bits and then in their samples; `use_deterministic_kernels` pins those.
"""

from __future__ import annotations

import os

import torch

from mstar_ray.core.seeds import derive_seed


def seed_process(seed: int, *purpose: str | int) -> None:
    """Seed torch's generators (CPU and every GPU) for `purpose`: what a process draws next (fresh weights,
    dropout masks) follows from the run's seed and that purpose, not from the process's own entropy."""
    torch.manual_seed(derive_seed(seed, *purpose))


def use_deterministic_kernels() -> None:
    """Torch's deterministic algorithms, cuBLAS's fixed-order workspace and deterministic cuDNN and flash-attention
    backward passes for this process (`run.deterministic`); call it before the process first touches CUDA."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when the first cuBLAS handle is made
    os.environ["FLASH_ATTENTION_DETERMINISTIC"] = "1"  # transformers' flash-attention backward
    # warn_only: an op without a deterministic kernel warns once instead of stopping a run hours in
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Filling every new tensor only guards against reading memory nothing wrote, which no op of a run does; it made
    # DeepSpeed training steps 10x slower on the CPU (each step allocates reduction buckets)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
