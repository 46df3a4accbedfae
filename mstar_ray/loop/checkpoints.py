"""A run's checkpoints: written to a staging directory and published whole, pruned to the last few plus the best,
and carrying, for an iteration, the trainers' DeepSpeed state, the journals and the driver state to resume from."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Protocol

from mstar_ray.config import CheckpointConfig
from mstar_ray.loop.run_dir import RunDir
from mstar_ray.loop.state import TRAINER_STATE_DIR, BestCheckpoint, DriverState


class SavesWeights(Protocol):
    """What a checkpoint needs of the trainers: the policy, and the DeepSpeed state when a stage is live."""

    def save_pretrained(self, out_dir: str) -> None: ...

    def save_state(self, out_dir: str) -> None: ...


def better_checkpoint(best: BestCheckpoint | None, name: str, metric: str, record: dict) -> BestCheckpoint | None:
    """`name` when its record's `metric` beats the best so far (the earlier one wins a tie), else the best so far."""
    value = record.get(metric)
    if value is None or (best is not None and value <= best.value):
        return best
    return BestCheckpoint(name, metric, value)


class Checkpoints:
    """Saving, publishing and pruning a run's checkpoints, and which one is best."""

    def __init__(self, run_dir: RunDir, cfg: CheckpointConfig, best: BestCheckpoint | None = None) -> None:
        self.run_dir, self.cfg, self.best = run_dir, cfg, best

    def due(self, iteration: int) -> bool:
        """Whether iteration `iteration` is checkpointed (every checkpoint.every iterations)."""
        return bool(self.cfg.every) and iteration % self.cfg.every == 0

    def save_weights(self, name: str, trainers: SavesWeights) -> Path:
        """The policy alone (`save_pretrained`), published as checkpoint `name` (the pre-evolved and final ones)."""
        trainers.save_pretrained(str(self.run_dir.checkpoint_staging(name)))
        return self.run_dir.publish_checkpoint(name)

    def consider_best(self, iteration: int, record: dict) -> BestCheckpoint | None:
        """Make iteration `iteration`'s checkpoint the best if its record beats the best so far."""
        if self.cfg.best_metric is not None:
            self.best = better_checkpoint(self.best, f"iter_{iteration:04d}", self.cfg.best_metric, record)
        return self.best

    def save_iteration(
        self,
        iteration: int,
        trainers: SavesWeights,
        state: DriverState,
        with_trainer_state: bool,
        record: dict | None = None,
    ) -> Path:
        """An iteration's checkpoint, resumable: weights, trainer state (when a stage is live), journals, driver
        state; with the iteration's `record`, the best is chosen first. The state is written with the best as it
        stands then, and older iteration checkpoints are pruned, sparing the best."""
        if record is not None:
            self.consider_best(iteration, record)
        state = replace(state, best=self.best)
        name = f"iter_{iteration:04d}"
        staging = self.run_dir.checkpoint_staging(name)
        trainers.save_pretrained(str(staging))
        if with_trainer_state:
            trainers.save_state(str(staging / TRAINER_STATE_DIR))
        self._write_state(staging, state)
        keep = self.best.name if self.best else None
        published = self.run_dir.publish_checkpoint(name, self.cfg.keep_last, keep=keep)
        if self.best is not None and self.best.name == name:
            self.run_dir.point_best(name)
        return published

    def add_state(self, name: str, state: DriverState) -> Path:
        """Make published checkpoint `name` resumable: a staged copy (its files linked, not copied) gets the journals
        and the driver state, then replaces it whole."""
        staging = self.run_dir.checkpoint_staging(name, linked_from=name)
        self._write_state(staging, state)
        return self.run_dir.publish_checkpoint(name)

    def _write_state(self, staging: Path, state: DriverState) -> None:
        """The journals, then the driver state (its presence marks the checkpoint resumable)."""
        self.run_dir.snapshot_journals(staging)
        state.write(staging)

    def restore_best_link(self) -> None:
        """Point `best` at the best checkpoint again (a kill between pruning and relinking can leave it stale)."""
        if self.best is not None and (self.run_dir.checkpoints / self.best.name).is_dir():
            self.run_dir.point_best(self.best.name)
