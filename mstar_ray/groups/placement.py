"""Where a run's actors go: one placement group with a bundle per actor slot (or per colocated index).

The group is reserved before any actor starts and lives as long as the driver; an actor restarted after a failure
goes back into its own bundle. With `resources.colocate`, bundle i holds rollout-i, trainer-i and prm-i, so
fractional `gpus_per_*` share one GPU between them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from mstar_ray.config import ConfigError, MStarConfig

log = logging.getLogger("mstar")


@dataclass(frozen=True)
class Role:
    """Actors of one kind: how many, and what each reserves."""

    count: int
    cpus: float
    gpus: float


def roles(cfg: MStarConfig, with_trainers: bool = True) -> dict[str, Role]:
    """The actor kinds of a run. PRM trainer ranks (when `mstar run` trains the PRM) and PRM actors never live at
    the same time, so they share the `prm` slots, each slot big enough for either."""
    r, prm = cfg.resources, cfg.prm
    out = {"rollout": Role(r.rollout_workers, r.cpus_per_rollout_worker, r.gpus_per_rollout_worker)}
    if with_trainers:
        out["trainer"] = Role(r.trainer_ranks, r.cpus_per_trainer, r.gpus_per_trainer)
    if prm.enabled:
        trains_prm = with_trainers and prm.path is None
        count = max(r.prm_workers, prm.train.trainer_ranks if trains_prm else 0)
        cpus = max(r.cpus_per_prm_worker, r.cpus_per_trainer if trains_prm else 0.0)
        gpus = max(r.gpus_per_prm_worker, r.gpus_per_trainer if trains_prm else 0.0)
        out["prm"] = Role(count, cpus, gpus)
    return out


def _bundle(cpus: float, gpus: float) -> dict[str, float]:
    return {"CPU": cpus} | ({"GPU": gpus} if gpus > 0 else {})


class Placement:
    """The run's placement group and the bundle of every actor slot."""

    def __init__(self, cfg: MStarConfig, with_trainers: bool = True, actor_logs: Path | None = None) -> None:
        """`actor_logs`: the folder every actor of the run writes its output to (None: Ray's session logs)."""
        r = cfg.resources
        self.actor_logs = actor_logs
        self.roles = roles(cfg, with_trainers)
        self.slots: dict[str, list[int]] = {}
        bundles: list[dict[str, float]] = []
        if r.colocate:
            width = max(role.count for role in self.roles.values())
            totals = [[0.0, 0.0] for _ in range(width)]
            for name, role in self.roles.items():
                self.slots[name] = list(range(role.count))
                for i in range(role.count):
                    totals[i][0] += role.cpus
                    totals[i][1] += role.gpus
            bundles = [_bundle(cpus, gpus) for cpus, gpus in totals]
        else:
            for name, role in self.roles.items():
                self.slots[name] = list(range(len(bundles), len(bundles) + role.count))
                bundles += [_bundle(role.cpus, role.gpus) for _ in range(role.count)]
        self.bundles, self.strategy = bundles, r.placement.value
        self.group = placement_group(bundles, strategy=self.strategy, name=f"mstar-{cfg.run.name}")
        ready, _ = ray.wait([self.group.ready()], timeout=r.placement_timeout_s)
        if not ready:
            remove_placement_group(self.group)
            raise ConfigError(self._unplaceable(r.placement_timeout_s))
        log.info("placement group %s: %d bundles %s", self.strategy, len(bundles), self.slots)

    def options(self, role: str, index: int, cpus: float | None = None, gpus: float | None = None) -> dict:
        """Actor options for actor `index` of `role` (what it reserves defaults to the role's figures)."""
        spec = self.roles[role]
        return {
            "num_cpus": spec.cpus if cpus is None else cpus,
            "num_gpus": spec.gpus if gpus is None else gpus,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                placement_group=self.group, placement_group_bundle_index=self.slots[role][index]
            ),
        }

    def remove(self) -> None:
        remove_placement_group(self.group)

    def _unplaceable(self, timeout: float) -> str:
        nodes = [
            f"{n['NodeManagerAddress']} (CPU {n['Resources'].get('CPU', 0):g}, GPU {n['Resources'].get('GPU', 0):g})"
            for n in ray.nodes()
            if n["Alive"]
        ]
        wanted = ", ".join(f"{name} x{r.count} ({_bundle(r.cpus, r.gpus)})" for name, r in self.roles.items())
        return (
            f"resources: the placement group ({self.strategy}, {len(self.bundles)} bundles: {wanted}) could not be "
            f"placed within resources.placement_timeout_s={timeout:g}s; alive nodes: {'; '.join(nodes)}. "
            "Lower the per-actor CPUs/GPUs or actor counts, add nodes, or relax resources.placement "
            "(STRICT_SPREAD needs one node per bundle, STRICT_PACK one node holding every bundle)"
        )


def actor_log_file(placement: Placement | None, name: str) -> str | None:
    """Where actor `name` writes its output: a file of the run's log folder, or None for Ray's own logs."""
    if placement is None or placement.actor_logs is None:
        return None
    return str(placement.actor_logs / f"{name}.log")


def actor_options(placement: Placement | None, role: str, index: int, cpus: float, gpus: float) -> dict:
    """Options for an actor: in its bundle when the run has a placement group, else a plain resource request."""
    if placement is None:
        return {"num_cpus": cpus, "num_gpus": gpus}
    return placement.options(role, index, cpus, gpus)
