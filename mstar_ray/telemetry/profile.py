"""Where a run's time goes: each actor's busy spans, laid over the driver's phases.

Every actor records the span of each working call (`busy`), with the bytes it took in and handed back; the driver
drains those spans after each record and attributes them to its phases. A phase's orchestration overhead is the
part of its wall time in which no actor was working: Ray scheduling and transfers, actors starting, and the
driver's own work (verifying answers, selecting, bookkeeping).
"""

from __future__ import annotations

import functools
import pickle
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class BusySpan:
    """One call an actor worked on: wall-clock start and end (time.time(), comparable across processes of a node)."""

    actor: str
    method: str
    start: float
    end: float
    bytes_in: int  # the call's arguments, as pickled (tensors by their size)
    bytes_out: int  # its result, likewise


def payload_bytes(obj: Any) -> int:
    """Bytes a value takes to move between processes: tensors by their storage, containers by their items,
    anything else by its pickle."""
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int) and hasattr(obj, "dtype"):  # a tensor or array, pickled by its buffer
        return nbytes
    if isinstance(obj, Mapping):
        return sum(payload_bytes(k) + payload_bytes(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and obj and not isinstance(obj[0], (int, float, str)):
        return sum(payload_bytes(item) for item in obj)
    return len(pickle.dumps(obj, protocol=5))


def busy(method: F) -> F:
    """Record each call of an actor method as a `BusySpan` of its actor (named by `self.profile_name`)."""

    @functools.wraps(method)
    def timed(self, *args, **kwargs):
        start, result, ok = time.time(), None, False
        try:
            result = method(self, *args, **kwargs)
            ok = True
            return result
        finally:
            end = time.time()
            span = BusySpan(
                getattr(self, "profile_name", type(self).__name__),
                method.__name__,
                start,
                end,
                _measured_bytes((args, kwargs)),
                _measured_bytes(result) if ok else 0,
            )
            self.__dict__.setdefault("busy_spans", []).append(span)

    return timed  # type: ignore[return-value]


def _measured_bytes(value: Any) -> int:
    """`payload_bytes`, or 0 for a value plain pickle cannot take (Ray's serialiser may still move it): the
    profile never fails the call it measures."""
    try:
        return payload_bytes(value)
    except Exception:  # noqa: BLE001
        return 0


def drain(actor_self) -> list[BusySpan]:
    """The spans an actor recorded since the last drain."""
    spans, actor_self.busy_spans = actor_self.__dict__.get("busy_spans", []), []
    return spans


@dataclass(frozen=True)
class PhaseProfile:
    """One phase of a record: its wall time, each actor's compute and bytes within it, and the overhead."""

    wall: float
    compute: dict[str, float]  # actor -> seconds busy inside the phase
    bytes: dict[str, int]  # actor -> bytes in + out of the calls that started inside the phase
    working: float  # seconds inside the phase in which at least one actor was busy

    @property
    def overhead(self) -> float:
        return max(0.0, self.wall - self.working)

    def to_json(self) -> dict[str, Any]:
        return {
            "wall": round(self.wall, 3),
            "compute": {a: round(s, 3) for a, s in sorted(self.compute.items())},
            "bytes": dict(sorted(self.bytes.items())),
            "working": round(self.working, 3),
            "overhead": round(self.overhead, 3),
        }


def profile_phases(windows: Mapping[str, tuple[float, float]], spans: Iterable[BusySpan]) -> dict[str, PhaseProfile]:
    """Attribute busy spans to phase windows (start, end wall-clock): compute by overlap, bytes to the phase a call
    started in."""
    spans = list(spans)
    out = {}
    for phase, (begin, end) in windows.items():
        compute: dict[str, float] = {}
        moved: dict[str, int] = {}
        inside = []
        for s in spans:
            lo, hi = max(begin, s.start), min(end, s.end)
            if hi > lo:
                compute[s.actor] = compute.get(s.actor, 0.0) + hi - lo
                inside.append((lo, hi))
            if begin <= s.start < end:
                moved[s.actor] = moved.get(s.actor, 0) + s.bytes_in + s.bytes_out
        out[phase] = PhaseProfile(end - begin, compute, moved, union_length(inside))
    return out


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Seconds covered by at least one of the (start, end) intervals."""
    covered, reach = 0.0, float("-inf")
    for lo, hi in sorted(intervals):
        if hi > reach:
            covered += hi - max(lo, reach)
            reach = hi
    return covered


def overhead_share(profiles: Mapping[str, PhaseProfile], wall: float) -> float:
    """The record's orchestration overhead as a share of its wall time: every phase's overhead plus the time
    between phases."""
    inside = sum(p.wall for p in profiles.values())
    return (sum(p.overhead for p in profiles.values()) + max(0.0, wall - inside)) / wall if wall > 0 else 0.0


def record_profile(windows: Mapping[str, tuple[float, float]], opened: float, spans: Iterable[BusySpan]) -> dict:
    """A metrics record's profile (JSON): its phases, its wall time from `opened` until now, the overhead share."""
    phases = profile_phases(windows, spans)
    wall = time.time() - opened
    return {
        "phases": {phase: p.to_json() for phase, p in phases.items()},
        "wall": round(wall, 3),
        "overhead_share": round(overhead_share(phases, wall), 4),
    }


def summed(profiles: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-phase profiles (their JSON) of several records added up, phase by phase."""
    total: dict[str, dict[str, Any]] = {}
    for record in profiles:
        for phase, p in record.items():
            t = total.setdefault(
                phase, {"wall": 0.0, "compute": {}, "bytes": {}, "working": 0.0, "overhead": 0.0, "count": 0}
            )
            for key in ("wall", "working", "overhead"):
                t[key] += p.get(key, 0.0)
            t["count"] += 1
            for actor, s in p["compute"].items():
                t["compute"][actor] = t["compute"].get(actor, 0.0) + s
            for actor, b in p["bytes"].items():
                t["bytes"][actor] = t["bytes"].get(actor, 0) + b
    return total


def run_stages(records: Sequence[Mapping[str, Any]], summary: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A run's profile by stage: the pre-evolution (metrics record 0), the iterations added up, and the final
    evaluation (summary.json). Each stage is {"wall": seconds, "phases": {phase: summed as `summed` does}}; a
    record without a profile (a run from before profiles) gives its phases' wall seconds alone."""
    pre = [r for r in records if r.get("iteration") == 0 and "seconds" in r]
    loop = [r for r in records if isinstance(r.get("iteration"), int) and r["iteration"] > 0 and "prompts" in r]
    out: dict[str, dict[str, Any]] = {}
    for stage, chosen in (("pre-evolution", pre), ("iterations", loop)):
        if not chosen:
            continue
        if all("profile" in r for r in chosen):
            wall = sum(r["profile"]["wall"] for r in chosen)
            out[stage] = {"wall": wall, "phases": summed([r["profile"]["phases"] for r in chosen])}
        else:
            phases: dict[str, Any] = {}
            for r in chosen:
                for phase, seconds in r["seconds"].items():
                    phases.setdefault(phase, {"wall": 0.0})["wall"] += seconds
            out[stage] = {"wall": sum(sum(r["seconds"].values()) for r in chosen), "phases": phases}
    if summary and "profile" in summary:
        out["final"] = {"wall": summary["profile"]["wall"], "phases": summed([summary["profile"]["phases"]])}
    return out


def stage_overhead(stage: Mapping[str, Any]) -> float | None:
    """A stage's seconds in which no actor worked: its phases' overhead and the time between them (None without
    a profile)."""
    phases = list(stage["phases"].values())
    if not phases or any("overhead" not in p for p in phases):
        return None
    return sum(p["overhead"] for p in phases) + max(0.0, stage["wall"] - sum(p["wall"] for p in phases))
