"""Recovering from dead actors without losing work.

- `EngineWeights` keeps every rollout engine on the trainers' latest weights: a sync under a new weights version,
  with engines that die on the way restarted and the group formed again, and `catch_up` for an engine the rollout
  group restarted mid-generate.
- `TrainerRebuilds` decides whether a dead trainer rank can be recovered, and from which checkpoint: DeepSpeed ranks
  cannot rejoin a running group, so the whole group is rebuilt from the previous iteration's checkpoint.
- `retry_on_dead_trainers` runs a step again after such a rebuild.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import ray

from mstar_ray.config import MStarConfig
from mstar_ray.groups.base import dead_actors
from mstar_ray.groups.placement import Placement
from mstar_ray.groups.rollout import RolloutGroup
from mstar_ray.groups.trainers import PolicyTrainerGroup
from mstar_ray.loop.run_dir import RunDir
from mstar_ray.loop.state import TRAINER_STATE_DIR, DriverState
from mstar_ray.sync.coordinator import SyncStats, WeightSync
from mstar_ray.sync.transport import WeightSyncError
from mstar_ray.training.sft import OptimSpec

log = logging.getLogger("mstar")
T = TypeVar("T")


class EngineWeights:
    """The weight sync of a run and the weights version the engines hold."""

    def __init__(self, cfg: MStarConfig, trainers: PolicyTrainerGroup, rollout: RolloutGroup) -> None:
        self.trainers, self.rollout = trainers, rollout
        self.sync_group = WeightSync(cfg.sync, trainers, rollout)
        self.version = 0
        self._reform = False
        rollout.after_restart = self.catch_up  # a cycle with the group; the driver shuts both down explicitly

    def use_trainers(self, trainers: PolicyTrainerGroup) -> None:
        """Send from a rebuilt trainer group from now on (the group is formed again at the next sync)."""
        self.trainers, self._reform = trainers, True

    def catch_up(self) -> None:
        """Bring restarted engines to the current weights: form the group again and send every weight."""
        self._reform = True
        self.sync(version=self.version)

    def sync(self, version: int | None = None) -> SyncStats:
        """Broadcast trainer rank 0's weights to every engine under a new weights version (or `version`). Engines
        that die on the way are restarted (each at most fault.max_actor_restarts times) and the group formed again;
        a dead trainer rank is left to the caller."""
        version = self.version + 1 if version is None else version
        while True:
            try:
                if self._reform:
                    self.sync_group.reform(self.trainers)
                    self._reform = False
                stats = self.sync_group.sync(version)
                break
            except WeightSyncError as err:
                if dead_actors(self.trainers.ranks):
                    self._reform = True
                    raise
                dead = dead_actors(self.rollout.workers)
                if not dead:
                    raise
                for i in dead:
                    self.rollout.restart(i, err)
                self._reform = True
        self.version = stats.version
        return stats

    def close(self) -> None:
        """Every member leaves the sync group."""
        self.sync_group.close()


class TrainerRebuilds:
    """How often the trainer group was rebuilt, and the checkpoint a rebuild starts from."""

    def __init__(self, run_dir: RunDir, limit: int, checkpoint_every: int, count: int = 0) -> None:
        self.run_dir, self.limit, self.checkpoint_every, self.count = run_dir, limit, checkpoint_every, count

    def checkpoint_for(self, dead: Sequence[str], iteration: int, err: Exception) -> tuple[Path, DriverState]:
        """The checkpoint of iteration `iteration - 1` to rebuild from, counting the rebuild; raises (naming the dead
        and the key) when rebuilds are used up, when there is no checkpoint, or when the newest is older (going on
        from it would silently undo iterations, so that case is left to --resume)."""
        names = ", ".join(dead)
        self.count += 1
        if self.count > self.limit:
            raise RuntimeError(
                f"{names} died; trainer group rebuilt {self.limit} times already (fault.max_trainer_rebuilds)"
            ) from err
        checkpoint = self.run_dir.latest_state()
        if checkpoint is None:
            raise RuntimeError(f"{names} died before the first checkpoint: nothing to rebuild from") from err
        state = DriverState.read(checkpoint)
        if state.iteration != iteration - 1:
            raise RuntimeError(
                f"{names} died in iteration {iteration} but the last checkpoint is of iteration {state.iteration} "
                f"(checkpoint.every={self.checkpoint_every}); continue with `mstar run --resume {self.run_dir.path}`"
            ) from err
        log.warning(
            "%s died (%s); rebuilding the trainer group from %s (rebuild %d of at most %d)",
            names,
            type(err).__name__,
            checkpoint.name,
            self.count,
            self.limit,
        )
        return checkpoint, state


def start_trainers(
    cfg: MStarConfig,
    run_dir: RunDir,
    placement: Placement | None,
    optim: OptimSpec,
    checkpoint: Path | None,
    stage_started: bool,
) -> PolicyTrainerGroup:
    """Trainer ranks from model.path, or rebuilt from a checkpoint: the pre-evolved weights (the ReST-EM base),
    then the checkpoint's DeepSpeed state when a stage was live."""
    if checkpoint is None:
        return PolicyTrainerGroup(cfg, cfg.model.path, placement=placement)
    trainers = PolicyTrainerGroup(cfg, str(run_dir.checkpoints / "pre_evolved"), placement=placement)
    trainers.snapshot_base()
    if stage_started:
        trainers.start_stage(optim)
        trainers.load_state(str(checkpoint / TRAINER_STATE_DIR))
    return trainers


def retry_on_dead_trainers(
    step: Callable[[], T],
    find_dead: Callable[[], list[str]],
    rebuild: Callable[[list[str], Exception], None],
    errors: tuple[type[BaseException], ...] = (ray.exceptions.RayError, WeightSyncError),
) -> T:
    """`step()`, run again after `rebuild(dead, err)` whenever it fails because trainer ranks died (`find_dead`
    names them; a failure with none dead is raised). `rebuild` raises once rebuilds are used up."""
    while True:
        try:
            return step()
        except errors as err:
            # A rank's death reaches its peers first as a failed collective (a task error), so look for the dead.
            dead = find_dead()
            if not dead:
                raise
            rebuild(dead, err)
