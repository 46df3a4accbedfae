"""The vLLM warnings that are expected on our path are dropped at their source, and only those."""

from __future__ import annotations

import logging

from mstar_ray.rollout.vllm_engine import _refused_thread_change
from mstar_ray.rollout.vllm_extension import _ExpectedReloadWarnings


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("vllm", logging.WARNING, __file__, 1, msg, args, None)


def test_reload_warnings_of_computed_tensors_and_a_tied_head_are_dropped_others_kept():
    tied, untied = _ExpectedReloadWarnings(tied_head=True), _ExpectedReloadWarnings(tied_head=False)
    for layer in ("RotaryEmbedding", "MRotaryEmbedding", "FusedMMInputNorm"):
        assert not tied.filter(record("%s: Failed to load weights", layer))
        assert not untied.filter(record("%s: Failed to load weights", layer))
    assert not tied.filter(record("%s: Failed to load weights", "ParallelLMHead"))
    assert untied.filter(record("%s: Failed to load weights", "ParallelLMHead"))  # an untied head must arrive
    assert tied.filter(record("%s: Failed to load weights", "QKVParallelLinear"))
    assert tied.filter(record("%s: Delayed processing", "RotaryEmbedding"))


def test_only_the_refused_thread_change_warning_is_dropped():
    refused = "CPU backend doesn't allow to use `torch.set_num_threads` after the thread binding, skip it."
    assert not _refused_thread_change(record(refused))
    assert _refused_thread_change(record("CPU KV cache size: %d tokens", 262144))
