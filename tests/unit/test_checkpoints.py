"""Checkpointing without Ray: staging and publishing, pruning, the best checkpoint, the resumable pre-evolved one,
republishing that never leaves a moment without a complete copy, and the driver state's round trip."""

from __future__ import annotations

import json
import os
import re

import pytest

from mstar_ray.cli import main
from mstar_ray.config import ConfigError
from mstar_ray.config.io import load_config
from mstar_ray.loop.checkpoints import Checkpoints, better_checkpoint
from mstar_ray.loop.launch import check_resume_keeps_the_run
from mstar_ray.loop.run_dir import RunDir
from mstar_ray.loop.state import STATE_FILE, TRAINER_STATE_DIR, BestCheckpoint, DriverState


class FileTrainers:
    """Stands in for the trainer group: writes what `save_pretrained` and `save_state` would, as small files."""

    def __init__(self) -> None:
        self.version = 0

    def save_pretrained(self, out_dir: str) -> None:
        with open(os.path.join(out_dir, "model.safetensors"), "w") as f:
            f.write(f"weights {self.version}")

    def save_state(self, out_dir: str) -> None:
        os.makedirs(out_dir)
        with open(os.path.join(out_dir, "state"), "w") as f:
            f.write(f"optimizer {self.version}")


def _state(iteration: int, best: BestCheckpoint | None = None) -> DriverState:
    return DriverState(
        iteration, iteration + 1, 10 * iteration, 0.7, {"epoch": 0, "position": iteration}, None, True, {}, best,
    )  # fmt: skip


def test_better_checkpoint_keeps_the_earlier_on_a_tie_and_ignores_records_without_the_figure() -> None:
    first = better_checkpoint(None, "iter_0001", "val_greedy_accuracy", {"val_greedy_accuracy": 0.5})
    assert first == BestCheckpoint("iter_0001", "val_greedy_accuracy", 0.5)
    assert better_checkpoint(first, "iter_0002", "val_greedy_accuracy", {"val_greedy_accuracy": 0.5}) is first
    assert better_checkpoint(first, "iter_0003", "val_greedy_accuracy", {"sample_accuracy": 0.9}) is first
    assert (
        better_checkpoint(first, "iter_0004", "val_greedy_accuracy", {"val_greedy_accuracy": 0.6}).name == "iter_0004"
    )


def test_iteration_checkpoints_are_resumable_pruned_and_the_best_is_kept_and_linked(new_run_dir) -> None:
    run = new_run_dir("checkpoint.keep_last=1")
    checkpoints, trainers = Checkpoints(run, load_config(run.path / "config.yaml").checkpoint), FileTrainers()
    accuracy = {1: 0.4, 2: 0.8, 3: 0.6, 4: 0.7}
    for i, value in accuracy.items():
        trainers.version = i
        run.append_metrics({"iteration": i})
        best = checkpoints.consider_best(i, {"val_greedy_accuracy": value})
        checkpoints.save_iteration(i, trainers, _state(i, best), with_trainer_state=True)
    names = sorted(p.name for p in run.checkpoints.iterdir())
    assert names == ["best", "iter_0002", "iter_0004"]  # the last one, plus the best
    assert (run.checkpoints / "best").resolve().name == "iter_0002" and checkpoints.best.value == 0.8
    latest = run.latest_state()
    assert latest.name == "iter_0004" and (latest / TRAINER_STATE_DIR / "state").read_text() == "optimizer 4"
    assert [line for line in (latest / "metrics.jsonl").read_text().splitlines()] == [
        f'{{"iteration": {i}}}' for i in range(1, 5)
    ]  # the journals as they were at that checkpoint
    state = DriverState.read(latest)
    assert state == _state(4, checkpoints.best)
    assert DriverState.read(run.checkpoints / "iter_0002").best.name == "iter_0002"  # a new best remembers itself
    old = json.loads((latest / STATE_FILE).read_text()) | {"selection_rng": [3, [0], None]}  # an earlier version's
    (latest / STATE_FILE).write_text(json.dumps(old))
    assert DriverState.read(latest) == state


def test_the_pre_evolved_state_is_staged_with_linked_weights_then_published_whole(new_run_dir) -> None:
    run = new_run_dir()
    checkpoints, trainers = Checkpoints(run, load_config(run.path / "config.yaml").checkpoint), FileTrainers()
    published = checkpoints.save_weights("pre_evolved", trainers)
    weights_inode = (published / "model.safetensors").stat().st_ino
    assert not (published / STATE_FILE).exists() and run.latest_state() is None  # weights only: not resumable yet

    checkpoints.add_state("pre_evolved", _state(0))

    assert run.latest_state() == published and DriverState.read(published).iteration == 0
    assert (published / "model.safetensors").stat().st_ino == weights_inode  # linked, not copied
    assert not list(run.checkpoints.glob(".*"))  # no staging or set-aside copy left behind


def test_republishing_sets_the_old_copy_aside_and_a_kill_in_between_is_repaired(new_run_dir) -> None:
    run = new_run_dir()
    trainers = FileTrainers()
    Checkpoints(run, load_config(run.path / "config.yaml").checkpoint).save_weights("final", trainers)
    # A kill between the two renames of a republication: the old copy is aside, the new one still staged.
    (run.checkpoints / "final").rename(run.checkpoints / ".final.old")
    (run.checkpoints / ".final.tmp").mkdir()
    assert RunDir.open(run.path).checkpoints / "final" in run.checkpoints.iterdir()  # reopening repairs it
    assert (run.checkpoints / "final" / "model.safetensors").read_text() == "weights 0"

    trainers.version = 1
    Checkpoints(run, load_config(run.path / "config.yaml").checkpoint).save_weights("final", trainers)
    assert (run.checkpoints / "final" / "model.safetensors").read_text() == "weights 1"
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["final"]


def test_no_best_checkpoint_without_a_best_metric(new_run_dir) -> None:
    run = new_run_dir("checkpoint.best_metric=null")
    checkpoints = Checkpoints(run, load_config(run.path / "config.yaml").checkpoint)
    assert checkpoints.consider_best(1, {"val_greedy_accuracy": 1.0}) is None
    checkpoints.save_iteration(1, FileTrainers(), _state(1), with_trainer_state=False)
    assert checkpoints.best is None and not (run.checkpoints / "best").exists()
    assert not (run.checkpoints / "iter_0001" / TRAINER_STATE_DIR).exists()


def test_a_resumed_run_records_its_overrides(new_run_dir) -> None:
    run = new_run_dir()
    cfg = load_config(run.path / "config.yaml", ["monitor.tensorboard=false"])
    run.record_resume(cfg, 2, ["monitor.tensorboard=false"])
    assert load_config(run.path / "config.yaml").monitor.tensorboard is False
    lines = (run.path / "resumes.jsonl").read_text().splitlines()
    assert lines == ['{"after_iteration": 2, "overrides": ["monitor.tensorboard=false"]}']
    with pytest.raises(ValueError, match="no resumable checkpoint"):
        run.resumable_checkpoint()


def test_a_resume_may_not_change_what_its_checkpoint_depends_on(new_run_dir) -> None:
    run = new_run_dir("run.seed=3")
    saved = run.path / "config.yaml"
    check_resume_keeps_the_run(run, load_config(saved, ["monitor.tensorboard=false", "run.seed=3"]))  # allowed
    for override in ("run.seed=4", "loop.interval=0.5", "resources.trainer_ranks=2", "train.lora.enabled=true"):
        with pytest.raises(ConfigError, match=re.escape(override.split("=")[0]) + ": a resumed run keeps"):
            check_resume_keeps_the_run(run, load_config(saved, [override]))
    assert main(["run", "--resume", str(run.path), "run.seed=4"]) == 2  # before any checkpoint is looked for
