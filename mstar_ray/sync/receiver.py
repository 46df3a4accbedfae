"""The engine side of a weight sync: receive a plan's buckets as a stream of named tensors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from mstar_ray.sync.buckets import Bucket, SyncPlan, unpack
from mstar_ray.sync.transport import BroadcastGroup


@dataclass(frozen=True)
class ReceiveStats:
    """How one engine worker spent a sync."""

    bytes: int
    seconds: float  # from the first bucket posted to the last one loaded
    load_seconds: float  # of which in the engine's own loader (the rest is waiting for buckets)


class ReceiveBuffers:
    """One buffer per bucket of a sync, since a loader may keep views of a bucket until a whole layer has arrived
    (vLLM's layerwise reload). On the CPU they are kept from one sync to the next: fresh host memory costs a page
    fault per page on first touch, which costs more than the broadcast itself. On GPUs torch's caching allocator
    already recycles freed blocks, so they are allocated per sync and freed after it.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kept: dict[int, torch.Tensor] = {}  # bucket index -> buffer (CPU only)
        self.waiting_seconds = 0.0  # of the last sync, set by `received_weights`

    def get(self, index: int, bucket: Bucket) -> torch.Tensor:
        """A buffer for bucket `index` of the current sync."""
        if self.device.type != "cpu":
            return torch.empty(bucket.numel, dtype=bucket.torch_dtype, device=self.device)
        buffer = self.kept.get(index)
        if buffer is None or buffer.dtype != bucket.torch_dtype or buffer.numel() < bucket.numel:
            buffer = self.kept[index] = torch.empty(bucket.numel, dtype=bucket.torch_dtype, device=self.device)
        return buffer[: bucket.numel]


def received_weights(
    group: BroadcastGroup, plan: SyncPlan, buffers: ReceiveBuffers
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield every (Hugging Face name, tensor) of `plan` as its bucket arrives; the consumer must exhaust it.

    The next bucket is already on its way while the consumer loads the current one.
    """

    def post(index: int) -> tuple:
        bucket = plan.buckets[index]
        flat = buffers.get(index, bucket)
        return bucket, flat, group.broadcast_async(flat)

    buffers.waiting_seconds = 0.0
    pending = post(0) if plan.buckets else None
    for index in range(len(plan.buckets)):
        bucket, flat, work = pending
        start = time.perf_counter()
        work.wait()
        buffers.waiting_seconds += time.perf_counter() - start
        pending = post(index + 1) if index + 1 < len(plan.buckets) else None
        yield from unpack(bucket, flat)


def timed_receive(plan: SyncPlan, buffers: ReceiveBuffers, receive: Callable[[], None]) -> ReceiveStats:
    """Run a receive that consumes `received_weights(..., buffers)` and say where its time went."""
    start = time.perf_counter()
    receive()
    seconds = time.perf_counter() - start
    return ReceiveStats(plan.nbytes, seconds, seconds - buffers.waiting_seconds)
