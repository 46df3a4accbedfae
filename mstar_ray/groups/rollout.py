"""The rollout workers `rollout-0..N-1`: prompts are split evenly over them, in order."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import ray

from actors.rollout_worker import RolloutWorker
from mstar_ray.config import MStarConfig, RolloutBackend
from mstar_ray.core.records import Prompt, PromptRollouts
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.groups.base import RestartingGroup, split_evenly
from mstar_ray.groups.placement import Placement, actor_log_file, actor_options
from mstar_ray.rollout.engine import EngineSpec

log = logging.getLogger("mstar")


class RolloutGroup(RestartingGroup):
    """Rollout workers; a restarted one loads `model_path`, then `after_restart` (when set, by whoever keeps the
    engines' weights current) brings it to the current weights before its unfinished prompts are sent again."""

    def __init__(self, cfg: MStarConfig, model_path: str, placement: Placement | None = None) -> None:
        r = cfg.resources
        self.spec = EngineSpec(
            cfg.rollout.backend,
            model_path,
            cfg.model.dtype,
            r.gpus_per_rollout_worker > 0,
            cfg.rollout.sequences_per_call,
            cfg.rollout.vllm,
            cfg.run.seed,
            cfg.model.trust_remote_code,
            cfg.run.deterministic,
        )
        self.resources = r
        self.after_restart: Callable[[], None] | None = None
        super().__init__(cfg, placement, [f"rollout-{i}" for i in range(r.rollout_workers)])

    def _start(self, index: int) -> ray.actor.ActorHandle:
        r = self.resources
        options = actor_options(self.placement, "rollout", index, r.cpus_per_rollout_worker, r.gpus_per_rollout_worker)
        name = self.names[index]
        log_file = actor_log_file(self.placement, name)
        threads = r.torch_threads if r.torch_threads_per_rollout_worker is None else r.torch_threads_per_rollout_worker
        return RolloutWorker.options(name=name, **options).remote(
            name, self.spec, threads, options["num_cpus"], log_file
        )

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, prefixes: Sequence[str] | None = None
    ) -> list[PromptRollouts]:
        """Samples for every prompt (continuing its response prefix, when given), in the order given."""
        shards = split_evenly(prompts, len(self.workers))
        prefix_shards = split_evenly(prefixes, len(self.workers)) if prefixes is not None else [None] * len(shards)

        def call(worker: ray.actor.ActorHandle, i: int, shard: Sequence[Prompt]) -> ray.ObjectRef:
            return worker.generate.remote(shard, params, prefix_shards[i])

        return self.map_shards(call, shards, on_restart=self.after_restart)

    @contextmanager
    def asleep(self) -> Iterator[None]:
        """Release the engines' accelerator memory for the block (when rollout.vllm.sleep_while_training; engines
        that never sleep are not called)."""
        sleeps = self.spec.backend == RolloutBackend.VLLM and self.spec.vllm.sleep_while_training
        if not sleeps:
            yield
            return
        self._on_living("sleep", [w.sleep.remote() for w in self.workers])
        try:
            yield
        finally:
            self._on_living("wake up", [w.wake_up.remote() for w in self.workers])

    def _on_living(self, what: str, refs: list[ray.ObjectRef]) -> None:
        """Wait for one call per worker; a dead worker is skipped (the next sync or generate restarts it)."""
        for name, ref in zip(self.names, refs, strict=True):
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError:
                log.warning("%s is dead; skipped its %s", name, what)

    def weights_versions(self) -> list[int | None]:
        """The weights version each engine holds."""
        return ray.get([w.weights_version.remote() for w in self.workers])
