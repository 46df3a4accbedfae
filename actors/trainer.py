"""Trainer rank actors: one DeepSpeed data-parallel rank of the policy (`PolicyTrainerRank`) or of the PRM
(`PRMTrainerRank`). Both join their group's process group, then train and save on request."""

from __future__ import annotations

from collections.abc import Sequence

import ray
import torch

from actors.process import configure_process
from mstar_ray.core.records import TrainExample
from mstar_ray.prm.model import StepLabeledExample
from mstar_ray.prm.trainer import PRMTrainer
from mstar_ray.sync.buckets import SyncPlan
from mstar_ray.sync.transport import free_port
from mstar_ray.telemetry.profile import BusySpan, busy, drain
from mstar_ray.training.sft import DistributedSpec, OptimSpec, PolicyOptions, SFTTrainer, TrainStats


class _TrainerRank:
    """What both kinds of rank do; `setup` builds the trainer."""

    trainer: SFTTrainer

    def __init__(
        self, name: str, torch_threads: int, cpus: float, deterministic: bool, log_file: str | None = None
    ) -> None:
        configure_process(torch_threads, cpus, deterministic, log_file)
        self.profile_name = name

    def drain_busy(self) -> list[BusySpan]:
        return drain(self)

    def rendezvous_address(self) -> tuple[str, int]:
        """This node's IP and a free port, for rank 0 to host a process group (the trainers' or the sync group)."""
        return ray.util.get_node_ip_address(), free_port()

    @busy
    def start_stage(self, optim: OptimSpec, reset_to_base: bool = False) -> None:
        self.trainer.start_stage(optim, reset_to_base)

    @busy
    def save_pretrained(self, out_dir: str) -> None:
        self.trainer.save_pretrained(out_dir)


@ray.remote
class PolicyTrainerRank(_TrainerRank):
    """A policy rank; rank 0 also sends the weights to the rollout engines."""

    @busy
    def setup(self, model_path: str, dist: DistributedSpec, options: PolicyOptions) -> None:
        self.trainer = SFTTrainer(model_path, dist, options)

    @busy
    def snapshot_base(self) -> None:
        self.trainer.snapshot_base()

    @busy
    def train(self, examples: Sequence[TrainExample], epochs: int, seed: int) -> TrainStats:
        return self.trainer.train(examples, epochs, seed)

    @busy
    def export_weights(self) -> dict[str, torch.Tensor]:
        return self.trainer.export_weights()

    @busy
    def join_weight_sync(self, host: str, port: int, world_size: int, timeout_s: float) -> None:
        self.trainer.join_weight_sync(host, port, world_size, timeout_s)

    @busy
    def plan_weight_sync(self, version: int, bucket_bytes: int) -> SyncPlan:
        return self.trainer.plan_weight_sync(version, bucket_bytes)

    @busy
    def send_weights(self, plan: SyncPlan) -> int:
        return self.trainer.send_weights(plan)

    def probe_weight_sync(self, nbytes: int) -> float:
        return self.trainer.probe_weight_sync(nbytes)

    def leave_weight_sync(self) -> None:
        self.trainer.sender.close()

    @busy
    def save_state(self, out_dir: str) -> None:
        self.trainer.save_state(out_dir)

    @busy
    def load_state(self, in_dir: str) -> None:
        self.trainer.load_state(in_dir)


@ray.remote
class PRMTrainerRank(_TrainerRank):
    """A PRM rank: backbone from a policy checkpoint or a PRM directory, trained on step-labelled responses."""

    @busy
    def setup(self, backbone_path: str, dist: DistributedSpec, options: PolicyOptions, meta: dict, seed: int) -> None:
        self.trainer = PRMTrainer(backbone_path, dist, options, meta, seed)

    @busy
    def train(self, examples: Sequence[StepLabeledExample], epochs: int, seed: int) -> TrainStats:
        return self.trainer.train(examples, epochs, seed)
