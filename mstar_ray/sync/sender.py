"""The trainer side of a weight sync: rank 0 plans the buckets and broadcasts them to every engine.

Under ZeRO-3 every rank joins the gather of each bucket's parameters; only rank 0 sends. Frozen parameters (a
frozen vision tower) go out once per sync group, trainable ones every time.
"""

from __future__ import annotations

import torch

from mstar_ray.sync.buckets import SyncPlan, TensorMeta, buffer_for, pack, plan_buckets
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

    def plan(self, module: torch.nn.Module, version: int, bucket_bytes: int) -> SyncPlan:
        """The buckets of the next sync: every trainable weight, and frozen ones not yet sent to this group."""
        metas: list[TensorMeta] = []
        frozen_left = False
        for name, param in module.named_parameters():
            if param.requires_grad or name not in self.sent_frozen:
                metas.append((name, _full_shape(param), param.dtype))
            else:
                frozen_left = True
        names = frozenset(name for name, _, _ in metas)
        return SyncPlan(version, plan_buckets(metas, bucket_bytes), full=not frozen_left, names=names)

    def send(self, module: torch.nn.Module, plan: SyncPlan, zero3: bool) -> int:
        """Broadcast the plan's buckets (rank 0) or only help gather them (other ZeRO-3 ranks); returns bytes sent."""
        import deepspeed

        if self.rank != 0 and not zero3:
            return 0
        if self.rank == 0 and self.group is None:
            raise RuntimeError("the sync group is not formed: call join() first")
        params = dict(module.named_parameters())
        device = next(iter(params.values())).device
        buffers = {
            dtype: [buffer_for(plan.buckets, dtype, device) for _ in range(2)]
            for dtype in {b.dtype for b in plan.buckets}
        }
        uses = dict.fromkeys(buffers, 0)
        in_flight: dict[int, torch.distributed.Work] = {}  # buffer id -> the broadcast still reading it
        for bucket in plan.buckets:
            members = [params[slot.name] for slot in bucket.slots]
            with deepspeed.zero.GatheredParameters(members, modifier_rank=None, enabled=zero3), torch.no_grad():
                if self.rank != 0:
                    continue
                buffer = buffers[bucket.dtype][uses[bucket.dtype] % 2]
                uses[bucket.dtype] += 1
                if id(buffer) in in_flight:  # packing the next bucket overlaps the previous broadcast
                    in_flight.pop(id(buffer)).wait()
                flat = pack(bucket, params, buffer)
                in_flight[id(buffer)] = self.group.broadcast_async(flat)
        for work in in_flight.values():
            work.wait()
        if self.rank == 0:
            self.sent_frozen |= {name for name in plan.names if not params[name].requires_grad}
        return plan.nbytes if self.rank == 0 else 0

    def close(self) -> None:
        """Leave the sync group."""
        if self.group is not None:
            self.group.close()
            self.group = None
