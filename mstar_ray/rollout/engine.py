"""The rollout engine interface both backends implement, and the backend registry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mstar_ray.config import RolloutBackend, VLLMConfig
from mstar_ray.core.records import Prompt, PromptRollouts
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.sync.buckets import SyncPlan
from mstar_ray.sync.receiver import ReceiveStats


class RolloutEngine(Protocol):
    """What a rollout actor needs from an engine."""

    sync_ranks: int  # members of the weight sync group this engine brings (its tensor-parallel workers)
    weights_version: int | None  # None while a sync is incomplete

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, prefixes: Sequence[str] | None = None
    ) -> list[PromptRollouts]: ...

    def join_weight_sync(self, host: str, port: int, world_size: int, first_rank: int, timeout_s: float) -> None: ...

    def receive_weights(self, plan: SyncPlan) -> ReceiveStats: ...

    def probe_weight_sync(self, nbytes: int) -> float: ...

    def leave_weight_sync(self) -> None: ...

    def sleep(self) -> None: ...

    def wake_up(self) -> None: ...


@dataclass(frozen=True)
class EngineSpec:
    """How to build one rollout engine."""

    backend: RolloutBackend
    model_path: str
    dtype: str
    use_gpu: bool
    sequences_per_call: int  # transformers backend
    vllm: VLLMConfig
    seed: int = 0
    trust_remote_code: bool = False
    deterministic: bool = False  # run.deterministic: the actor's process uses deterministic kernels


def build_engine(spec: EngineSpec) -> RolloutEngine:
    """The engine of the configured backend (vLLM is imported only when asked for)."""
    if spec.backend == RolloutBackend.VLLM:
        from mstar_ray.rollout.vllm_engine import VLLMRolloutEngine

        return VLLMRolloutEngine(
            spec.model_path, spec.dtype, spec.use_gpu, spec.vllm, spec.seed, spec.trust_remote_code, spec.deterministic
        )
    from mstar_ray.rollout.hf_engine import TransformersRolloutEngine

    return TransformersRolloutEngine(
        spec.model_path, spec.dtype, "cuda" if spec.use_gpu else "cpu", spec.sequences_per_call, spec.trust_remote_code
    )


class PartialWeightsError(RuntimeError):
    """The engine's last sync broke off part-way, so its weights are a mix of two versions."""


def apply_sync(engine: RolloutEngine, plan: SyncPlan) -> ReceiveStats:
    """Receive a sync into `engine`, marking it unusable until every bucket has arrived."""
    engine.weights_version = None
    received = engine.receive_weights(plan)
    engine.weights_version = plan.version
    return received


def check_usable(engine: RolloutEngine, name: str) -> None:
    """Refuse to sample from an engine whose last sync did not complete."""
    if engine.weights_version is None:
        raise PartialWeightsError(f"{name} holds a partial weight update (its last sync failed); sync it again")
