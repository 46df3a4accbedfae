"""What every actor group shares: starting named actors, waiting on calls, finding the dead, restarting them.

Rollout and PRM actors that die are restarted in their own bundle and their unfinished share of the work is sent
again (`RestartingGroup.map_shards`); trainer ranks are rebuilt by the driver from a checkpoint.
"""

from __future__ import annotations

import gc
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence

import ray

from mstar_ray.config import MStarConfig
from mstar_ray.groups.placement import Placement, actor_log_file
from mstar_ray.telemetry.profile import BusySpan

log = logging.getLogger("mstar")


class ActorRestartLimit(RuntimeError):
    """An actor died more often than fault.max_actor_restarts allows."""


def start_named(create: Callable[[], ray.actor.ActorHandle], timeout_s: float = 60.0) -> ray.actor.ActorHandle:
    """Create a named actor, waiting while a predecessor still holds the name: a dead one until Ray frees it, an
    unreferenced one (say, of an earlier run in this process, kept by a reference cycle) until it is collected."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return create()
        except ValueError:  # "The name ... is already taken"
            if time.monotonic() > deadline:
                raise
            gc.collect()
            time.sleep(0.5)


def get_all(refs: Sequence[ray.ObjectRef]) -> list:
    """Every result, raising at the first failure instead of waiting behind calls blocked on a dead peer."""
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        ray.get(done[0])
    return ray.get(list(refs))


def dead_actors(handles: Sequence[ray.actor.ActorHandle], timeout_s: float = 10.0) -> list[int]:
    """Indices of the actors that are dead; one still busy with a call counts as alive."""
    pings = [h.__ray_ready__.remote() for h in handles]
    ray.wait(pings, num_returns=len(pings), timeout=timeout_s)
    dead = []
    for i, ping in enumerate(pings):
        try:
            ray.get(ping, timeout=0)
        except ray.exceptions.RayActorError:
            dead.append(i)
        except ray.exceptions.GetTimeoutError:
            pass
    return dead


def drain_busy(handles: Sequence[ray.actor.ActorHandle]) -> list[BusySpan]:
    """The busy spans the living actors recorded since the last drain (a dead actor's are lost with it)."""
    spans = []
    for ref in [h.drain_busy.remote() for h in handles]:
        try:
            spans += ray.get(ref)
        except ray.exceptions.RayActorError:
            pass
    return spans


def split_evenly(items: Sequence, parts: int) -> list[list]:
    """`items` in `parts` consecutive runs whose lengths differ by at most one (the first ones longer)."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return out


# A call of one worker on its shard: (worker handle, shard) -> the object reference of its result list
ShardCall = Callable[[ray.actor.ActorHandle, int, Sequence], ray.ObjectRef]


class RestartingGroup(ABC):
    """Workers that are restarted, by name and in their own bundle, when they die while working."""

    def __init__(self, cfg: MStarConfig, placement: Placement | None, names: list[str]) -> None:
        self.max_restarts, self.ready_timeout_s = cfg.fault.max_actor_restarts, cfg.fault.restart_timeout_s
        self.placement, self.names = placement, names
        self.restarts: Counter[str] = Counter()
        self.workers = [start_named(lambda i=i: self._start(i)) for i in range(len(names))]

    @abstractmethod
    def _start(self, index: int) -> ray.actor.ActorHandle:
        """Create worker `index` (named `names[index]`, in its bundle)."""

    def shutdown(self) -> None:
        """Stop the workers and free their resources."""
        for worker in self.workers:
            ray.kill(worker)

    def drain_busy(self) -> list[BusySpan]:
        return drain_busy(self.workers)

    def restart(self, index: int, err: Exception) -> None:
        """Replace dead worker `index` with a new actor of the same name (its name frees once Ray marks it dead)."""
        name = self.names[index]
        self.restarts[name] += 1
        if self.restarts[name] > self.max_restarts:
            raise ActorRestartLimit(
                f"{name} died {self.restarts[name]} times, more than fault.max_actor_restarts={self.max_restarts}"
            ) from err
        log.warning(
            "%s died (%s); restarting it (restart %d); what it printed: %s",
            name,
            type(err).__name__,
            self.restarts[name],
            actor_log_file(self.placement, name) or "Ray's worker logs",
        )
        ray.kill(self.workers[index], no_restart=True)
        self.workers[index] = start_named(lambda: self._start(index))
        ready, _ = ray.wait([self.workers[index].__ray_ready__.remote()], timeout=self.ready_timeout_s)
        if not ready:
            raise ActorRestartLimit(
                f"the restarted {name} was not up within fault.restart_timeout_s={self.ready_timeout_s:g}s "
                "(no room left for its bundle?)"
            ) from err

    def map_shards(
        self, call: ShardCall, shards: Sequence[Sequence], on_restart: Callable[[], None] | None = None
    ) -> list:
        """`call(worker i, i, shard i)` for every non-empty shard and the results in shard order; a worker that dies
        is restarted (then `on_restart` runs) and its shard is sent again."""
        results: dict[int, list] = {}
        pending = [i for i, shard in enumerate(shards) if len(shard)]
        while pending:
            refs = {i: call(self.workers[i], i, shards[i]) for i in pending}
            failed: list[tuple[int, Exception]] = []
            for i, ref in refs.items():
                try:
                    results[i] = ray.get(ref)
                except ray.exceptions.RayActorError as err:
                    failed.append((i, err))
            for i, err in failed:
                self.restart(i, err)
                log.warning("re-sending %d unfinished items to the restarted %s", len(shards[i]), self.names[i])
            if failed and on_restart is not None:
                on_restart()
            pending = [i for i, _ in failed]
        return [row for i in sorted(results) for row in results[i]]
