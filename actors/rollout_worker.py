"""Rollout worker actor: one policy copy on the configured backend (transformers or vLLM)."""

from __future__ import annotations

from collections.abc import Sequence

import ray

from actors.process import configure_process
from mstar_ray.core.records import Prompt, PromptRollouts
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.rollout.engine import EngineSpec, apply_sync, build_engine, check_usable
from mstar_ray.sync.buckets import SyncPlan
from mstar_ray.sync.receiver import ReceiveStats
from mstar_ray.telemetry.profile import BusySpan, busy, drain


@ray.remote
class RolloutWorker:
    """Samples responses and receives weights broadcast by trainer rank 0."""

    @busy
    def __init__(
        self, name: str, spec: EngineSpec, torch_threads: int, cpus: float, log_file: str | None = None
    ) -> None:
        configure_process(torch_threads, cpus, spec.deterministic, log_file)
        self.name = self.profile_name = name
        self.engine = build_engine(spec)

    def drain_busy(self) -> list[BusySpan]:
        return drain(self)

    @busy
    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, prefixes: Sequence[str] | None = None
    ) -> list[PromptRollouts]:
        check_usable(self.engine, self.name)
        return self.engine.generate(prompts, params, prefixes)

    def sync_ranks(self) -> int:
        return self.engine.sync_ranks

    @busy
    def join_weight_sync(self, host: str, port: int, world_size: int, first_rank: int, timeout_s: float) -> None:
        self.engine.join_weight_sync(host, port, world_size, first_rank, timeout_s)

    @busy
    def receive_weights(self, plan: SyncPlan) -> ReceiveStats:
        return apply_sync(self.engine, plan)

    def probe_weight_sync(self, nbytes: int) -> float:
        return self.engine.probe_weight_sync(nbytes)

    def leave_weight_sync(self) -> None:
        self.engine.leave_weight_sync()

    def weights_version(self) -> int | None:
        return self.engine.weights_version

    @busy
    def sleep(self) -> None:
        self.engine.sleep()

    @busy
    def wake_up(self) -> None:
        self.engine.wake_up()
