"""Bucket planning, packing and unpacking of the weight sync (no process group needed)."""

from __future__ import annotations

import numpy as np
import torch

from mstar_ray.sync.buckets import SyncPlan, buffer_for, contiguous_span, lay_out_like, pack, plan_buckets, unpack


def _weights() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(4, 8, generator=gen),
        "a.bias": torch.randn(8, generator=gen),
        "norm": torch.randn(8, generator=gen).to(torch.bfloat16),
        "big": torch.randn(100, generator=gen),
        "c.weight": torch.randn(3, 3, generator=gen),
    }


def test_buckets_respect_the_size_limit_and_keep_one_dtype_each() -> None:
    weights = _weights()
    buckets = plan_buckets([(n, tuple(t.shape), t.dtype) for n, t in weights.items()], bucket_bytes=160)
    assert sorted(s.name for b in buckets for s in b.slots) == sorted(weights)  # every tensor exactly once
    for bucket in buckets:
        assert {weights[s.name].dtype for s in bucket.slots} == {bucket.torch_dtype}
        assert bucket.nbytes <= 160 or len(bucket.slots) == 1  # only a lone oversized tensor exceeds it
    float32 = [s.name for b in buckets for s in b.slots if b.dtype == "float32"]
    assert float32 == ["a.weight", "a.bias", "big", "c.weight"]  # in the given order
    assert next(b for b in buckets if b.slots[0].name == "big").slots[0].numel == 100


def test_pack_then_unpack_gives_back_every_tensor_exactly() -> None:
    weights = _weights()
    buckets = plan_buckets([(n, tuple(t.shape), t.dtype) for n, t in weights.items()], bucket_bytes=256)
    received = {}
    for bucket in buckets:
        wire = pack(bucket, weights, buffer_for(buckets, bucket.dtype, "cpu")).clone()  # what a broadcast delivers
        received.update(unpack(bucket, wire))
    assert received.keys() == weights.keys()
    for name, tensor in weights.items():
        assert received[name].shape == tensor.shape and received[name].dtype == tensor.dtype
        assert torch.equal(received[name], tensor)


def test_a_bucket_of_neighbours_in_one_flat_storage_is_sent_without_packing() -> None:
    flat = torch.arange(20, dtype=torch.float32)
    a, b, c = flat[0:6].view(2, 3), flat[6:10], flat[12:20]  # a and b touch, c starts after a gap
    span = contiguous_span([a, b])
    assert span is not None and span.data_ptr() == flat.data_ptr() and torch.equal(span, flat[:10])
    assert contiguous_span([a, c]) is None and contiguous_span([b, a]) is None  # a gap, or out of order
    assert contiguous_span([flat[0:4].view(2, 2).t(), flat[4:6]]) is None  # not contiguous itself
    # Back to back in memory but two storages (as a checkpoint loaded from one mmap'd file can be): not one span.
    memory = np.zeros(8, dtype=np.float32)
    left, right = torch.from_numpy(memory[:4]), torch.from_numpy(memory[4:])
    assert right.data_ptr() == left.data_ptr() + 16
    assert left.untyped_storage().data_ptr() != right.untyped_storage().data_ptr()
    assert contiguous_span([left, right]) is None


def test_parameters_laid_out_like_a_plan_receive_without_copies() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    params = dict(model.named_parameters())
    before = {name: p.detach().clone() for name, p in params.items()}
    buckets = plan_buckets([(n, tuple(p.shape), p.dtype) for n, p in params.items()], bucket_bytes=64)
    plan = SyncPlan(1, buckets, names=frozenset(params))
    assert all(contiguous_span([params[s.name] for s in b.slots]) is None for b in buckets if len(b.slots) > 1)
    lay_out_like(plan, params)
    for bucket in buckets:
        span = contiguous_span([params[s.name] for s in bucket.slots])
        assert span is not None and span.numel() == bucket.numel
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())  # same values, new home
    span = contiguous_span([params[s.name] for s in buckets[0].slots])
    span.fill_(0.5)  # what a broadcast into the span does
    assert all(bool((params[s.name] == 0.5).all()) for s in buckets[0].slots)
    assert model(torch.ones(1, 4)).shape == (1, 2)
