"""The trainer side of a weight sync: rank 0 plans the buckets and broadcasts them to every engine.

Under ZeRO-3 every rank joins the gather of each bucket's parameters; only rank 0 sends. Weights that training
never changes (a frozen vision tower, the base weights under LoRA adapters) go out once per sync group, the
others every time.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mstar_ray.sync.buckets import SyncPlan, TensorMeta, buffer_for, contiguous_span, pack, plan_buckets
from mstar_ray.sync.transport import BroadcastGroup


def _full_shape(param: torch.Tensor) -> tuple[int, ...]:
    # ZeRO-3 partitions a parameter in place and keeps its real shape in `ds_shape`.
    return tuple(getattr(param, "ds_shape", param.shape))


class WeightSender:
    """Holds the sync group on trainer rank 0 and remembers which frozen weights the engines already have."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.group: BroadcastGroup | None = None
        self.sent_frozen: set[str] = set()

    def join(self, host: str, port: int, world_size: int, device: torch.device, timeout_s: float) -> None:
        """Host the sync group as its rank 0 (blocks until every engine has joined)."""
        if self.rank != 0:
            raise RuntimeError("only trainer rank 0 takes part in the sync group")
        self.group = BroadcastGroup(host, port, 0, world_size, device, timeout_s)
        self.sent_frozen = set()  # new peers have only what they loaded from disk

    def plan(
        self, weights: Mapping[str, torch.Tensor], changing: frozenset[str], version: int, bucket_bytes: int
    ) -> SyncPlan:
        """The buckets of the next sync: every `changing` weight, and the others not yet sent to this group."""
        metas: list[TensorMeta] = []
        frozen_left = False
        for name, param in weights.items():
            if name in changing or name not in self.sent_frozen:
                metas.append((name, _full_shape(param), param.dtype))
            else:
                frozen_left = True
        names = frozenset(name for name, _, _ in metas)
        return SyncPlan(version, plan_buckets(metas, bucket_bytes), full=not frozen_left, names=names)

    def send(self, weights: Mapping[str, torch.Tensor], changing: frozenset[str], plan: SyncPlan, zero3: bool) -> int:
        """Broadcast the plan's buckets (rank 0) or only help gather them (other ZeRO-3 ranks); returns bytes sent."""
        import deepspeed

        if self.rank != 0 and not zero3:
            return 0
        if self.rank == 0 and self.group is None:
            raise RuntimeError("the sync group is not formed: call join() first")
        params = dict(weights)
        pending: list[torch.distributed.Work] = []  # broadcasts straight from parameter storage
        staging = _StagingBuffers(plan, next(iter(params.values())).device)
        for bucket in plan.buckets:
            members = [params[slot.name] for slot in bucket.slots]
            with deepspeed.zero.GatheredParameters(members, modifier_rank=None, enabled=zero3), torch.no_grad():
                if self.rank != 0:
                    continue
                # DeepSpeed ZeRO-1/2 keeps parameters in flat groups: a bucket of neighbours goes without a copy.
                span = None if zero3 else contiguous_span(members)
                if span is not None:
                    pending.append(self.group.broadcast_async(span))
                else:
                    buffer = staging.next_free(bucket.dtype)  # packing overlaps the previous bucket's broadcast
                    staging.hold(buffer, self.group.broadcast_async(pack(bucket, params, buffer)))
        for work in pending + staging.in_flight():
            work.wait()
        if self.rank == 0:
            self.sent_frozen |= plan.names - changing
        return plan.nbytes if self.rank == 0 else 0

    def close(self) -> None:
        """Leave the sync group."""
        if self.group is not None:
            self.group.close()
            self.group = None


class _StagingBuffers:
    """Two packing buffers per dtype, allocated on first use, each reused once its broadcast has finished."""

    def __init__(self, plan: SyncPlan, device: torch.device) -> None:
        self.plan, self.device = plan, device
        self.buffers: dict[str, list[torch.Tensor]] = {}
        self.uses: dict[str, int] = {}
        self.works: dict[int, torch.distributed.Work] = {}  # id of a buffer -> its broadcast in flight

    def next_free(self, dtype: str) -> torch.Tensor:
        pair = self.buffers.setdefault(dtype, [])
        if len(pair) < 2:
            pair.append(buffer_for(self.plan.buckets, dtype, self.device))
        buffer = pair[self.uses.get(dtype, 0) % 2]
        self.uses[dtype] = self.uses.get(dtype, 0) + 1
        if id(buffer) in self.works:
            self.works.pop(id(buffer)).wait()
        return buffer

    def hold(self, buffer: torch.Tensor, work: torch.distributed.Work) -> None:
        self.works[id(buffer)] = work

    def in_flight(self) -> list[torch.distributed.Work]:
        return list(self.works.values())
