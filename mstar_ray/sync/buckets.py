"""Pack named tensors into a few flat buffers (one dtype each) and unpack them on the receiving side.

Both sides agree on a `SyncPlan` sent through Ray: names, shapes and offsets travel as metadata, only the flat
buffers go through the process group, one broadcast per bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

# (name, full shape, dtype) of one tensor to send; shapes are the unpartitioned ones under ZeRO-3.
TensorMeta = tuple[str, tuple[int, ...], torch.dtype]


@dataclass(frozen=True)
class TensorSlot:
    """Where one named tensor sits inside its bucket."""

    name: str
    shape: tuple[int, ...]
    offset: int  # in elements
    numel: int


@dataclass(frozen=True)
class Bucket:
    """One flat buffer's worth of tensors of a single dtype."""

    dtype: str  # torch dtype name, e.g. "float32"
    numel: int
    slots: tuple[TensorSlot, ...]

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    @property
    def nbytes(self) -> int:
        return self.numel * self.torch_dtype.itemsize


@dataclass(frozen=True)
class SyncPlan:
    """Everything the receivers need to know before the bytes arrive."""

    version: int
    buckets: tuple[Bucket, ...]
    full: bool = True  # every weight is in the plan (not only the trainable ones)
    names: frozenset[str] = field(default_factory=frozenset)

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.buckets)

    @property
    def num_tensors(self) -> int:
        return sum(len(b.slots) for b in self.buckets)


def plan_buckets(tensors: Iterable[TensorMeta], bucket_bytes: int) -> tuple[Bucket, ...]:
    """Group tensors by dtype, in the given order, into buckets of at most `bucket_bytes` each (a larger tensor
    gets a bucket of its own)."""
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    buckets: list[Bucket] = []
    open_slots: dict[torch.dtype, list[TensorSlot]] = {}
    open_numel: dict[torch.dtype, int] = {}
    for name, shape, dtype in tensors:
        numel = math.prod(shape)
        slots = open_slots.setdefault(dtype, [])
        used = open_numel.get(dtype, 0)
        if slots and (used + numel) * dtype.itemsize > bucket_bytes:
            buckets.append(_bucket(dtype, used, slots))
            slots, used = open_slots[dtype], open_numel[dtype] = [], 0
        slots.append(TensorSlot(name, tuple(shape), used, numel))
        open_numel[dtype] = used + numel
    buckets.extend(_bucket(dtype, open_numel[dtype], slots) for dtype, slots in open_slots.items() if slots)
    return tuple(buckets)


def _bucket(dtype: torch.dtype, numel: int, slots: list[TensorSlot]) -> Bucket:
    return Bucket(str(dtype).removeprefix("torch."), numel, tuple(slots))


def pack(bucket: Bucket, tensors: dict[str, torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    """Copy the bucket's tensors into `out` (at least `bucket.numel` elements); returns the used view."""
    flat = out[: bucket.numel]
    for slot in bucket.slots:
        flat[slot.offset : slot.offset + slot.numel].copy_(tensors[slot.name].detach().reshape(-1))
    return flat


def contiguous_span(tensors: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """A flat view over `tensors` when they lie back to back in one storage, in order (as DeepSpeed's flattened
    ZeRO-1/2 parameter groups do): such a bucket can be broadcast without packing. None otherwise."""
    first = tensors[0]
    storage = first.untyped_storage()
    end = first.data_ptr()
    for tensor in tensors:
        same_storage = tensor.untyped_storage().data_ptr() == storage.data_ptr()  # adjacent is not enough
        if not (same_storage and tensor.is_contiguous() and tensor.dtype == first.dtype and tensor.data_ptr() == end):
            return None
        end += tensor.numel() * tensor.element_size()
    numel = sum(t.numel() for t in tensors)
    span = torch.empty(0, dtype=first.dtype, device=first.device)
    return span.set_(storage, first.storage_offset(), (numel,))


@torch.no_grad()
def lay_out_like(plan: SyncPlan, params: dict[str, torch.Tensor]) -> None:
    """Move the named parameters into one flat storage per bucket of `plan`, in its order, so that a later sync with
    the same plan can be received straight into them (`contiguous_span` then finds each bucket)."""
    for bucket in plan.buckets:
        first = params[bucket.slots[0].name]
        flat = torch.empty(bucket.numel, dtype=bucket.torch_dtype, device=first.device)
        for slot in bucket.slots:
            view = flat[slot.offset : slot.offset + slot.numel].view(slot.shape)
            view.copy_(params[slot.name])
            params[slot.name].data = view  # a tied parameter is one object, so every use follows


def unpack(bucket: Bucket, flat: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Views of each named tensor inside a received flat buffer (no copies)."""
    return [(s.name, flat[s.offset : s.offset + s.numel].view(s.shape)) for s in bucket.slots]


def buffer_for(buckets: Sequence[Bucket], dtype: str, device: torch.device | str) -> torch.Tensor:
    """One reusable buffer large enough for every bucket of a dtype."""
    size = max((b.numel for b in buckets if b.dtype == dtype), default=0)
    return torch.empty(size, dtype=getattr(torch, dtype), device=device)
