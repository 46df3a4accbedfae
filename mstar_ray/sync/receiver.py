"""The engine side of a weight sync: receive a plan's buckets as a stream of named tensors."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from mstar_ray.sync.buckets import SyncPlan, unpack
from mstar_ray.sync.transport import BroadcastGroup


def received_weights(group: BroadcastGroup, plan: SyncPlan) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield every (Hugging Face name, tensor) of `plan` as its bucket arrives; the consumer must exhaust it.

    The next bucket is already on its way while the consumer loads the current one. Each bucket gets a fresh
    buffer, because a loader may keep views of it until a whole layer has arrived (vLLM's layerwise reload).
    """

    def post(index: int) -> tuple:
        bucket = plan.buckets[index]
        flat = torch.empty(bucket.numel, dtype=bucket.torch_dtype, device=group.device)
        return bucket, flat, group.broadcast_async(flat)

    pending = post(0) if plan.buckets else None
    for index in range(len(plan.buckets)):
        bucket, flat, work = pending
        work.wait()
        pending = post(index + 1) if index + 1 < len(plan.buckets) else None
        yield from unpack(bucket, flat)
