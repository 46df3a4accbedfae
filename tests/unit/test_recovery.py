"""Trainer recovery decisions without Ray: which checkpoint a rebuild starts from, when it must stop, and the retry
of a phase after a rebuild."""

from __future__ import annotations

import pytest

from mstar_ray.loop.recovery import TrainerRebuilds, retry_on_dead_trainers
from mstar_ray.loop.run_dir import RunDir
from mstar_ray.loop.state import DriverState


def _with_checkpoints(run: RunDir, iterations: list[int]) -> RunDir:
    for i in iterations:
        staging = run.checkpoint_staging(f"iter_{i:04d}")
        DriverState(i, i + 1, i, 1.0, {"epoch": 0, "position": 0}, None, True).write(staging)
        run.publish_checkpoint(f"iter_{i:04d}")
    return run


def test_a_rebuild_starts_from_the_previous_iterations_checkpoint(new_run_dir) -> None:
    rebuilds = TrainerRebuilds(_with_checkpoints(new_run_dir(), [1, 2]), limit=2, checkpoint_every=1)
    checkpoint, state = rebuilds.checkpoint_for(["trainer-1"], 3, RuntimeError("peer died"))
    assert checkpoint.name == "iter_0002" and state.iteration == 2 and rebuilds.count == 1


def test_a_rebuild_refuses_an_older_checkpoint_none_at_all_and_too_many(new_run_dir) -> None:
    err = RuntimeError("peer died")
    older = TrainerRebuilds(_with_checkpoints(new_run_dir(sub="a"), [2]), limit=2, checkpoint_every=2)
    with pytest.raises(
        RuntimeError, match=r"trainer-0 died in iteration 4 .* iteration 2 \(checkpoint.every=2\).*--resume"
    ):
        older.checkpoint_for(["trainer-0"], 4, err)
    empty = TrainerRebuilds(_with_checkpoints(new_run_dir(sub="b"), []), limit=2, checkpoint_every=1)
    with pytest.raises(RuntimeError, match="before the first checkpoint"):
        empty.checkpoint_for(["trainer-0"], 1, err)
    used_up = TrainerRebuilds(_with_checkpoints(new_run_dir(sub="c"), [1]), limit=1, checkpoint_every=1, count=1)
    with pytest.raises(RuntimeError, match=r"rebuilt 1 times already \(fault.max_trainer_rebuilds\)"):
        used_up.checkpoint_for(["trainer-0", "trainer-1"], 2, err)


class PhaseFailure(Exception):
    """A failed collective, as a peer of a dead rank sees it."""


def test_retry_runs_the_phase_again_after_each_rebuild_and_raises_failures_with_no_dead() -> None:
    attempts, rebuilt = [], []

    def phase() -> str:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise PhaseFailure("allreduce failed")
        return "trained"

    result = retry_on_dead_trainers(
        phase, lambda: ["trainer-1"], lambda dead, err: rebuilt.append(dead), (PhaseFailure,)
    )
    assert result == "trained" and len(attempts) == 3 and rebuilt == [["trainer-1"], ["trainer-1"]]

    def broken() -> str:
        raise PhaseFailure("a bug, not a death")

    with pytest.raises(PhaseFailure, match="a bug"):
        retry_on_dead_trainers(broken, lambda: [], lambda dead, err: rebuilt.append(dead), (PhaseFailure,))
    assert len(rebuilt) == 2
