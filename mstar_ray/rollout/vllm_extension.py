"""Mixed into vLLM's worker class through `worker_extension_cls`: the engine side of the weight sync.

vLLM calls these methods by name in each of its workers (one per tensor-parallel rank) via `collective_rpc`; no
function is pickled. Each worker joins the sync group and loads every broadcast bucket with the model's own
`load_weights` through vLLM's in-place reload, which maps Hugging Face names onto vLLM's fused and sharded
parameters and redoes any kernel-specific processing of a layer once all its weights have arrived.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from mstar_ray.sync.buckets import SyncPlan
from mstar_ray.sync.receiver import ReceiveBuffers, ReceiveStats, received_weights, timed_receive
from mstar_ray.sync.transport import BroadcastGroup


class WeightSyncExtension:
    """Methods added to vLLM's worker (which provides `self.rank`, `self.device` and `self.reload_weights`)."""

    def join_weight_sync(self, host: str, port: int, world_size: int, first_rank: int, timeout_s: float) -> None:
        """Join the trainer's sync group at rank `first_rank` + this worker's rank inside the engine."""
        self.weight_sync_group = BroadcastGroup(host, port, first_rank + self.rank, world_size, self.device, timeout_s)
        self.weight_sync_buffers = ReceiveBuffers(self.device)

    def receive_weights(self, plan: SyncPlan) -> ReceiveStats:
        """Receive and load one sync's buckets."""

        def receive() -> None:
            stream = received_weights(self.weight_sync_group, plan, self.weight_sync_buffers)
            configs = (self.model_config.hf_config, self.model_config.hf_text_config)
            tied = any(getattr(c, "tie_word_embeddings", False) for c in configs)  # VLMs keep it at the top
            with _expected_reload_warnings_dropped(tied):
                self.reload_weights(weights_iterator=stream, is_checkpoint_format=True)
            for _ in stream:  # a loader that stopped early must not leave the group out of step
                raise RuntimeError("vLLM's reload did not consume every received weight")
            _rebuild_cpu_lm_heads(self.model_runner.model)

        return timed_receive(plan, self.weight_sync_buffers, receive)

    def probe_weight_sync(self, nbytes: int) -> float:
        """Receive one raw broadcast of `nbytes`; returns its seconds."""
        return self.weight_sync_group.probe(nbytes)

    def leave_weight_sync(self) -> None:
        """Drop this worker's membership of the sync group."""
        group = getattr(self, "weight_sync_group", None)
        if group is not None:
            group.close()
            self.weight_sync_group = None


class _ExpectedReloadWarnings(logging.Filter):
    """vLLM's in-place reload warns "<Layer>: Failed to load weights" for every layer that owns tensors but got
    none. Some such layers are expected on every sync, and vLLM keeps their current tensors, which is right for
    them: rotary embeddings (their cos/sin caches are computed, never sent), the image input normalisation (its
    constants come from the processor's config) and, when the LM head is tied to the input embedding, the head (the
    embedding carries the shared weight; `_rebuild_cpu_lm_heads` rebuilds it). Any other layer's warning shows."""

    def __init__(self, tied_head: bool) -> None:
        super().__init__()
        self.expected = {"FusedMMInputNorm"} | ({"ParallelLMHead"} if tied_head else set())

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "%s: Failed to load weights" or not record.args:
            return True
        layer = str(record.args[0])
        return not (layer in self.expected or layer.endswith("RotaryEmbedding"))


@contextmanager
def _expected_reload_warnings_dropped(tied_head: bool) -> Iterator[None]:
    logger = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    expected = _ExpectedReloadWarnings(tied_head)
    logger.addFilter(expected)
    try:
        yield
    finally:
        logger.removeFilter(expected)


def _rebuild_cpu_lm_heads(model) -> None:
    """Rebuild the CPU backend's GEMM handle of each LM head from its current weight.

    vLLM's CPU backend builds that handle once from the head's weight. A head tied to the input embedding is not
    reprocessed by the in-place reload (only the embedding, which owns the shared weight, is), so without this
    it keeps projecting with the weights it was first loaded with.
    """
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    for module in model.modules():
        if isinstance(module, ParallelLMHead):
            module.quant_method.process_weights_after_loading(module)
