"""A process's draws follow the run's seed and their purpose; `run.deterministic` switches on deterministic kernels
(checked in a fresh interpreter, since the switches are process-wide) and DeepSpeed's in-order reductions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from mstar_ray.core.determinism import seed_process
from mstar_ray.training.sft import DistributedSpec, OptimSpec, deepspeed_config


def test_a_purpose_seeds_the_same_draws_whatever_was_drawn_before() -> None:
    seed_process(0, "dropout", 1)
    first = torch.rand(4)
    torch.rand(100)
    seed_process(0, "dropout", 1)
    assert torch.equal(torch.rand(4), first)
    seed_process(0, "dropout", 2)
    other_purpose = torch.rand(4)
    seed_process(1, "dropout", 1)
    assert not torch.equal(other_purpose, first) and not torch.equal(torch.rand(4), first)


REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, os, torch
from actors.process import configure_process
configure_process(1, 1.0, {deterministic})
print(json.dumps([torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                  torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
                  os.environ.get("CUBLAS_WORKSPACE_CONFIG"), torch.get_num_threads()]))
"""


def _probe(deterministic: bool) -> list:
    command = [sys.executable, "-c", PROBE.format(deterministic=deterministic)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO, env={"PYTHONPATH": str(REPO)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_deterministic_kernels_are_switched_on_only_when_asked() -> None:
    assert _probe(True) == [True, True, True, False, ":4096:8", 1]
    assert _probe(False) == [False, False, False, False, None, 1]


def test_deepspeed_reduces_gradients_in_order_when_deterministic() -> None:
    optim = OptimSpec(lr=1e-3, micro_batch_size=2, zero_stage=3)
    spec = DistributedSpec(0, 2, "127.0.0.1", 1, use_gpu=True)
    assert "overlap_comm" not in deepspeed_config(optim, spec, "bfloat16")["zero_optimization"]  # DeepSpeed's default
    deterministic = DistributedSpec(0, 2, "127.0.0.1", 1, use_gpu=True, deterministic=True)
    assert deepspeed_config(optim, deterministic, "bfloat16")["zero_optimization"]["overlap_comm"] is False
