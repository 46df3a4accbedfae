"""A broadcast process group of its own between trainer rank 0 (rank 0 here) and every rollout engine.

It is built directly from a TCP store, apart from torch's default process group, which DeepSpeed (trainer side)
and vLLM (engine side) each already own in their processes. NCCL on GPUs, gloo on the CPU.
"""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import torch
import torch.distributed as dist


class WeightSyncError(RuntimeError):
    """A weight sync did not complete everywhere; the message names the engines involved."""


def free_port() -> int:
    """A TCP port that is free on this node now."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


class BroadcastGroup:
    """One member of the sync group; rank 0 is the source of every broadcast."""

    def __init__(self, host: str, port: int, rank: int, world_size: int, device: torch.device, timeout_s: float):
        timeout = timedelta(seconds=timeout_s)
        self.rank, self.world_size, self.device = rank, world_size, device
        self.probe_buffer: torch.Tensor | None = None
        # The source hosts the store; every member connects to it and the group forms once all have.
        self.store = dist.TCPStore(host, port, world_size, is_master=rank == 0, timeout=timeout)
        if device.type == "cuda":
            self.group = dist.ProcessGroupNCCL(self.store, rank, world_size, timeout)
        else:
            self.group = dist.ProcessGroupGloo(self.store, rank, world_size, timeout)

    def broadcast_async(self, tensor: torch.Tensor) -> dist.Work:
        """Start broadcasting `tensor` from rank 0 into every member's `tensor`; `.wait()` on the result."""
        opts = dist.BroadcastOptions()
        opts.rootRank = 0
        return self.group.broadcast([tensor], opts)

    def probe(self, nbytes: int) -> float:
        """Broadcast one ready flat buffer of `nbytes` from rank 0 and return the seconds the broadcast took here:
        the transport's limit, against which syncs are measured. The first call of a size only prepares the
        buffer (allocated and touched, so page faults are not timed) and returns 0."""
        if self.probe_buffer is None or self.probe_buffer.numel() != nbytes:
            fill = 1 if self.rank == 0 else 0
            self.probe_buffer = torch.full((nbytes,), fill, dtype=torch.uint8, device=self.device)
            return 0.0
        start = time.perf_counter()
        self.broadcast_async(self.probe_buffer).wait()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def close(self) -> None:
        """Drop the group (peers see their connections close)."""
        self.group = None
        self.store = None
