"""Trainer groups: DeepSpeed ranks forming one process group, rank 0 hosting the rendezvous.

`PolicyTrainerGroup` (`trainer-0..N-1`) trains the policy and feeds the weight sync; `PRMTrainerGroup`
(`prm-trainer-0..N-1`, in the PRM actors' slots) trains a process reward model.
"""

from __future__ import annotations

from collections.abc import Sequence

import ray

from actors.trainer import PolicyTrainerRank, PRMTrainerRank
from mstar_ray.config import MStarConfig
from mstar_ray.core.records import TrainExample
from mstar_ray.core.seeds import derive_seed
from mstar_ray.groups.base import drain_busy, get_all, start_named
from mstar_ray.groups.placement import Placement, actor_log_file, actor_options
from mstar_ray.prm.model import StepLabeledExample
from mstar_ray.telemetry.profile import BusySpan
from mstar_ray.training.sft import DistributedSpec, OptimSpec, PolicyOptions, TrainStats, shard_examples


def policy_options(cfg: MStarConfig) -> PolicyOptions:
    """How the trainer ranks load and adapt the policy."""
    t = cfg.train
    lora = t.lora if t.lora.enabled else None
    return PolicyOptions(
        cfg.model.dtype, t.freeze_vision, cfg.model.trust_remote_code, t.gradient_checkpointing, lora, cfg.run.seed
    )


class _TrainerGroup:
    """Ranks of one DeepSpeed process group; subclasses say which actor class, names and slots."""

    def __init__(self, cfg: MStarConfig, rank_class, name: str, count: int, slot: str, placement: Placement | None):
        r = cfg.resources
        self.names = [f"{name}-{i}" for i in range(count)]
        self.ranks = [
            start_named(
                lambda i=i, rank_name=rank_name: rank_class.options(
                    name=rank_name, **actor_options(placement, slot, i, r.cpus_per_trainer, r.gpus_per_trainer)
                ).remote(
                    rank_name,
                    r.torch_threads,
                    r.cpus_per_trainer,
                    cfg.run.deterministic,
                    actor_log_file(placement, rank_name),
                )
            )
            for i, rank_name in enumerate(self.names)
        ]
        addr, port = ray.get(self.ranks[0].rendezvous_address.remote())
        use_gpu, deterministic = r.gpus_per_trainer > 0, cfg.run.deterministic
        self.specs = [DistributedSpec(i, count, addr, port, use_gpu, deterministic) for i in range(count)]
        self.optim: OptimSpec | None = None

    def shutdown(self) -> None:
        """Stop the ranks and free their resources."""
        for rank in self.ranks:
            ray.kill(rank)

    def drain_busy(self) -> list[BusySpan]:
        return drain_busy(self.ranks)

    def start_stage(self, optim: OptimSpec, reset_to_base: bool = False) -> None:
        """Fresh optimizer and schedule on every rank (from the base weights first, with `reset_to_base`)."""
        self.optim = optim
        get_all([rank.start_stage.remote(optim, reset_to_base) for rank in self.ranks])

    def train(self, examples: Sequence[TrainExample | StepLabeledExample], epochs: int, seed: int) -> list[TrainStats]:
        """Shard examples evenly over the ranks and train; one stats record per rank."""
        if self.optim is None:
            raise RuntimeError(f"{self.names[0]}: train needs a training stage: call start_stage(optim) first")
        multiple = self.optim.micro_batch_size * self.optim.grad_accum_steps
        shards = shard_examples(examples, len(self.ranks), multiple, seed)
        return get_all([rank.train.remote(shard, epochs, seed) for rank, shard in zip(self.ranks, shards, strict=True)])

    def save_pretrained(self, out_dir: str) -> None:
        """Rank 0 writes a Hugging Face checkpoint (or PRM directory); all ranks take part in gathering."""
        get_all([rank.save_pretrained.remote(out_dir) for rank in self.ranks])


class PolicyTrainerGroup(_TrainerGroup):
    """The policy's ranks `trainer-0..N-1` in the trainer slots."""

    def __init__(self, cfg: MStarConfig, model_path: str, placement: Placement | None = None) -> None:
        super().__init__(cfg, PolicyTrainerRank, "trainer", cfg.resources.trainer_ranks, "trainer", placement)
        options = policy_options(cfg)
        get_all(
            [rank.setup.remote(model_path, spec, options) for rank, spec in zip(self.ranks, self.specs, strict=True)]
        )

    def snapshot_base(self) -> None:
        """Every rank remembers its current weights as the ReST-EM base."""
        get_all([rank.snapshot_base.remote() for rank in self.ranks])

    def export_weights_ref(self) -> ray.ObjectRef:
        """An object reference to rank 0's full weights (every rank joins a ZeRO-3 gather, others return {})."""
        refs = [rank.export_weights.remote() for rank in self.ranks]
        ray.get(refs[1:])
        return refs[0]

    def save_state(self, out_dir: str) -> None:
        """Every rank writes its part of the DeepSpeed state (optimizer partitions, schedule)."""
        get_all([rank.save_state.remote(out_dir) for rank in self.ranks])

    def load_state(self, in_dir: str) -> None:
        """Every rank restores what `save_state` wrote (after `start_stage` with the same settings)."""
        get_all([rank.load_state.remote(in_dir) for rank in self.ranks])


class PRMTrainerGroup(_TrainerGroup):
    """The PRM's ranks `prm-trainer-0..N-1`, in the PRM actors' slots (those start once training is over)."""

    def __init__(self, cfg: MStarConfig, backbone_path: str, meta: dict, placement: Placement | None = None) -> None:
        super().__init__(cfg, PRMTrainerRank, "prm-trainer", cfg.prm.train.trainer_ranks, "prm", placement)
        m = cfg.model
        options = PolicyOptions(m.dtype, cfg.prm.train.freeze_vision, m.trust_remote_code, seed=cfg.run.seed)
        seed = derive_seed(cfg.run.seed, "prm", "value_head")  # every rank draws the same fresh head
        ranks = zip(self.ranks, self.specs, strict=True)
        get_all([rank.setup.remote(backbone_path, spec, options, meta, seed) for rank, spec in ranks])
