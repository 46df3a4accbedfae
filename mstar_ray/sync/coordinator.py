"""The driver's side of weight sync: form the group of trainer rank 0 and every engine, then run syncs over it."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import ray

from mstar_ray.config import SyncConfig
from mstar_ray.sync.transport import WeightSyncError


@dataclass(frozen=True)
class SyncStats:
    """What one sync moved."""

    version: int
    bytes: int
    tensors: int
    buckets: int
    full: bool  # every weight was sent (frozen ones included)
    seconds: float  # at the driver, from planning to the last engine done
    load_seconds: float  # the slowest engine's time inside its own weight loader

    @property
    def gb_per_s(self) -> float:
        return self.bytes / max(self.seconds, 1e-9) / 1e9


class WeightSync:
    """Broadcasts trainer rank 0's weights to every rollout engine, bucket by bucket, with a weights version.

    `trainers` and `rollout` are the driver's PolicyTrainerGroup and RolloutGroup (anything with `ranks`/`names` and
    `workers`/`names`). A sync that fails anywhere raises WeightSyncError naming each actor that failed.
    """

    def __init__(self, cfg: SyncConfig, trainers, rollout) -> None:
        self.cfg, self.trainers, self.rollout = cfg, trainers, rollout
        self._form()

    def reform(self, trainers=None) -> None:
        """Form the group again after members were replaced (restarted engines, rebuilt trainers); the next sync
        then sends every weight."""
        self.close()
        self.trainers = trainers or self.trainers
        self._form()

    def _form(self) -> None:
        trainers, rollout, cfg = self.trainers, self.rollout, self.cfg
        forming = "forming the weight sync group"
        asked = {name: w.sync_ranks.remote() for name, w in zip(rollout.names, rollout.workers, strict=True)}
        ranks = self._wait(asked, forming)
        engine_ranks = [ranks[name] for name in rollout.names]
        self.world_size = 1 + sum(engine_ranks)
        firsts = [1 + offset for offset in itertools.accumulate([0, *engine_ranks[:-1]])]
        address = {trainers.names[0]: trainers.ranks[0].rendezvous_address.remote()}
        host, port = self._wait(address, forming)[trainers.names[0]]
        source = trainers.ranks[0].join_weight_sync.remote(host, port, self.world_size, cfg.timeout_s)
        calls = {trainers.names[0]: source}
        for name, worker, first in zip(rollout.names, rollout.workers, firsts, strict=True):
            calls[name] = worker.join_weight_sync.remote(host, port, self.world_size, first, cfg.timeout_s)
        self._wait(calls, forming)

    def sync(self, version: int) -> SyncStats:
        """Send the trainers' current weights as `version`; every engine holds them when this returns."""
        start = time.perf_counter()
        bucket_bytes = int(self.cfg.bucket_mb * 2**20)
        planned = {self.trainers.names[0]: self.trainers.ranks[0].plan_weight_sync.remote(version, bucket_bytes)}
        plan = self._wait(planned, f"planning weight sync v{version}")[self.trainers.names[0]]
        trainers, rollout = self.trainers, self.rollout
        calls = {name: r.send_weights.remote(plan) for name, r in zip(trainers.names, trainers.ranks, strict=True)}
        calls |= {name: w.receive_weights.remote(plan) for name, w in zip(rollout.names, rollout.workers, strict=True)}
        results = self._wait(calls, f"weight sync v{version}")
        seconds = time.perf_counter() - start
        load = max((results[name] for name in rollout.names), key=lambda stats: stats.load_seconds)
        return SyncStats(
            version, plan.nbytes, plan.num_tensors, len(plan.buckets), plan.full, seconds, load.load_seconds
        )

    def probe(self, nbytes: int) -> tuple[float, float]:
        """The transport's limit for a sync of `nbytes`: one flat buffer of that size, made ready beforehand,
        broadcast to every engine over the same group. Returns the seconds at the driver (timed like `sync`) and
        the slowest member's seconds inside the broadcast."""
        timings = []
        for _ in range(2):  # the first round prepares the buffers
            start = time.perf_counter()
            calls = {self.trainers.names[0]: self.trainers.ranks[0].probe_weight_sync.remote(nbytes)}
            for name, worker in zip(self.rollout.names, self.rollout.workers, strict=True):
                calls[name] = worker.probe_weight_sync.remote(nbytes)
            results = self._wait(calls, "broadcast probe")
            timings.append((time.perf_counter() - start, max(results.values())))
        return timings[-1]

    def close(self) -> None:
        """Every member leaves the group (best effort: a dead member is skipped)."""
        calls = [self.trainers.ranks[0].leave_weight_sync.remote()]
        calls += [w.leave_weight_sync.remote() for w in self.rollout.workers]
        ray.wait(calls, num_returns=len(calls), timeout=30)

    def _wait(self, calls: dict[str, ray.ObjectRef], what: str) -> dict:
        """Wait for every call (at most sync.timeout_s); return the results by actor name, or raise naming each
        actor whose call failed or did not finish in time."""
        refs = list(calls.values())
        ray.wait(refs, num_returns=len(refs), timeout=self.cfg.timeout_s + 30)
        failures, results = [], {}
        for name, ref in calls.items():
            try:
                results[name] = ray.get(ref, timeout=0)
            except ray.exceptions.GetTimeoutError:
                failures.append(f"{name}: no answer within sync.timeout_s={self.cfg.timeout_s:g}s")
            except ray.exceptions.RayActorError as err:
                failures.append(f"{name}: the actor died ({type(err).__name__})")
            except Exception as err:  # noqa: BLE001 - every failure is reported, by actor
                failures.append(f"{name}: {_first_line(err)}")
        if failures:
            raise WeightSyncError(f"{what} failed on " + "; ".join(failures))
        return results


def _first_line(err: Exception) -> str:
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"
