"""The actor groups the driver talks to: rollout workers and the trainer ranks.

Each helper starts its actors, spreads work over them, and waits for the results, so the driver reads as plain
calls. Actor handles stay reachable for tests and for fault handling.
"""

from __future__ import annotations

from collections.abc import Sequence

import ray

from actors.rollout_worker import RolloutWorker
from actors.trainer import TrainerRank
from mstar_ray.config import MStarConfig
from mstar_ray.records import Prompt, PromptRollouts, TrainExample
from mstar_ray.rollout.sampling import SamplingParams
from mstar_ray.training.sft import DistributedSpec, OptimSpec, TrainStats, shard_examples


def _split_evenly(items: Sequence, parts: int) -> list[list]:
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return out


class RolloutGroup:
    """Rollout workers `rollout-0..N-1`; prompts are split evenly over them."""

    def __init__(self, cfg: MStarConfig, model_path: str) -> None:
        r = cfg.resources
        self.workers = [
            RolloutWorker.options(
                name=f"rollout-{i}", num_cpus=r.cpus_per_rollout_worker, num_gpus=r.gpus_per_rollout_worker
            ).remote(
                model_path,
                cfg.model.dtype,
                r.gpus_per_rollout_worker > 0,
                cfg.rollout.batch_size,
                r.torch_threads,
                r.cpus_per_rollout_worker,
            )
            for i in range(r.rollout_workers)
        ]

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[PromptRollouts]:
        """Samples for every prompt, in the order given."""
        shards = _split_evenly(prompts, len(self.workers))
        refs = [w.generate.remote(shard, params) for w, shard in zip(self.workers, shards, strict=True) if shard]
        return [group for part in ray.get(refs) for group in part]

    def load_weights(self, weights_ref: ray.ObjectRef, version: int) -> None:
        """Load the weights behind one object reference into every worker."""
        ray.get([w.load_weights.remote(weights_ref, version) for w in self.workers])


class TrainerGroup:
    """DeepSpeed ranks `trainer-0..N-1` forming one process group; rank 0 hosts the rendezvous."""

    def __init__(self, cfg: MStarConfig, model_path: str) -> None:
        r = cfg.resources
        self.ranks = [
            TrainerRank.options(name=f"trainer-{i}", num_cpus=r.cpus_per_trainer, num_gpus=r.gpus_per_trainer).remote(
                r.torch_threads, r.cpus_per_trainer
            )
            for i in range(r.trainer_ranks)
        ]
        addr, port = ray.get(self.ranks[0].rendezvous_address.remote())
        use_gpu = r.gpus_per_trainer > 0
        ray.get(
            [
                rank.setup.remote(model_path, DistributedSpec(i, len(self.ranks), addr, port, use_gpu), cfg.model.dtype)
                for i, rank in enumerate(self.ranks)
            ]
        )

    def start_stage(self, optim: OptimSpec, reset_to_base: bool = False) -> None:
        """Fresh optimizer and schedule on every rank."""
        self.optim = optim
        ray.get([rank.start_stage.remote(optim, reset_to_base) for rank in self.ranks])

    def snapshot_base(self) -> None:
        """Every rank remembers its current weights as the ReST-EM base."""
        ray.get([rank.snapshot_base.remote() for rank in self.ranks])

    def train(self, examples: Sequence[TrainExample], epochs: int, seed: int) -> list[TrainStats]:
        """Shard examples evenly over the ranks and train; one stats record per rank."""
        multiple = self.optim.micro_batch_size * self.optim.grad_accum_steps
        shards = shard_examples(examples, len(self.ranks), multiple, seed)
        return ray.get([rank.train.remote(shard, epochs, seed) for rank, shard in zip(self.ranks, shards, strict=True)])

    def export_weights_ref(self) -> ray.ObjectRef:
        """An object reference to rank 0's full weights (every rank joins a ZeRO-3 gather, others return {})."""
        refs = [rank.export_weights.remote() for rank in self.ranks]
        ray.get(refs[1:])
        return refs[0]

    def save_pretrained(self, out_dir: str) -> None:
        """Rank 0 writes a Hugging Face checkpoint; all ranks take part in gathering."""
        ray.get([rank.save_pretrained.remote(out_dir) for rank in self.ranks])
