"""The run profile: busy spans recorded by actor methods, laid over the driver's phases."""

from __future__ import annotations

import pickle

import pytest
import torch

from mstar_ray.telemetry.monitor import PhaseTimer
from mstar_ray.telemetry.profile import (
    BusySpan,
    busy,
    drain,
    overhead_share,
    payload_bytes,
    profile_phases,
    record_profile,
    summed,
    union_length,
)


class Worker:
    """Stands in for an actor class: `busy` needs only `self`."""

    profile_name = "worker-0"

    @busy
    def work(self, items: list[str]) -> list[str]:
        return [i.upper() for i in items]

    @busy
    def fail(self) -> None:
        raise ValueError("broken")


def test_busy_records_each_call_with_its_bytes_and_drain_empties():
    w = Worker()
    assert w.work(["a", "b"]) == ["A", "B"]
    with pytest.raises(ValueError):
        w.fail()
    spans = drain(w)
    assert [(s.actor, s.method) for s in spans] == [("worker-0", "work"), ("worker-0", "fail")]
    assert spans[0].end >= spans[0].start
    assert spans[0].bytes_out == len(pickle.dumps(["A", "B"], protocol=5))  # a list of strings in one pickle
    assert spans[0].bytes_in > 0 and spans[1].bytes_out == 0  # a failed call hands nothing back
    assert drain(w) == []


def test_payload_bytes_counts_tensors_by_storage_not_pickle():
    weights = {"w": torch.zeros(1000, dtype=torch.float32), "b": torch.zeros(10, dtype=torch.float16)}
    assert payload_bytes(weights) == 4000 + 20 + payload_bytes("w") + payload_bytes("b")
    assert payload_bytes([1, 2, 3]) == len(pickle.dumps([1, 2, 3], protocol=5))


def span(actor: str, start: float, end: float, nbytes: int = 0) -> BusySpan:
    return BusySpan(actor, "call", start, end, nbytes, 0)


def test_phases_take_the_overlap_of_each_span_and_the_bytes_where_a_call_began():
    windows = {"rollout": (10.0, 20.0), "train": (20.0, 26.0)}
    spans = [span("rollout-0", 11.0, 19.0, 100), span("trainer-0", 19.5, 25.0, 40), span("prm-0", 30.0, 31.0, 7)]
    phases = profile_phases(windows, spans)
    assert phases["rollout"].compute == {"rollout-0": 8.0, "trainer-0": 0.5}
    assert phases["rollout"].bytes == {"rollout-0": 100, "trainer-0": 40}
    assert phases["rollout"].overhead == 1.5  # of 10 s, someone worked from 11 to 19 and from 19.5 to 20
    assert phases["train"].compute == {"trainer-0": 5.0} and phases["train"].bytes == {}
    assert phases["train"].overhead == 1.0
    # the overhead of both phases plus the 4 s after them, of a 20 s record
    assert overhead_share(phases, 20.0) == pytest.approx((1.5 + 1.0 + 4.0) / 20.0)


def test_actors_working_one_after_another_leave_no_overhead_between_them():
    spans = [span("rollout-0", 0.0, 6.0), span("prm-0", 6.0, 9.0), span("rollout-1", 1.0, 5.0)]
    phase = profile_phases({"test": (0.0, 10.0)}, spans)["test"]
    assert phase.working == 9.0 and phase.overhead == 1.0
    assert union_length([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0), (5.5, 5.7)]) == 4.0


def test_a_phase_nobody_worked_in_is_all_overhead():
    phases = profile_phases({"select": (0.0, 0.5)}, [])
    assert phases["select"].overhead == 0.5 and phases["select"].to_json()["compute"] == {}


def test_record_profile_of_a_timer_and_its_sum_over_records():
    timer = PhaseTimer()
    with timer("rollout"):
        pass
    begin, end = timer.windows["rollout"]
    timer.mark("tail", end)
    record = record_profile(timer.windows, timer.opened, [span("rollout-0", begin, end, 5)])
    assert set(record["phases"]) == {"rollout", "tail"}
    assert record["phases"]["rollout"]["bytes"] == {"rollout-0": 5}
    assert 0.0 <= record["overhead_share"] <= 1.0 and record["wall"] >= 0.0
    total = summed([record["phases"], record["phases"]])
    assert total["rollout"]["count"] == 2 and total["rollout"]["bytes"] == {"rollout-0": 10}
    assert total["rollout"]["wall"] == pytest.approx(2 * record["phases"]["rollout"]["wall"])


def test_a_phase_timed_twice_in_one_record_is_refused():
    timer = PhaseTimer()
    with timer("benchmarks"):
        pass
    with pytest.raises(ValueError, match="timed twice"), timer("benchmarks"):
        pass
