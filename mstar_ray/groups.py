"""The actor groups the driver talks to: rollout workers and the trainer ranks.

Each helper starts its actors, spreads work over them, and waits for the results, so the driver reads as plain
calls. Actor handles stay reachable for tests and for fault handling.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import ray

from actors.prm_worker import PRMWorker
from actors.rollout_worker import RolloutWorker
from actors.trainer import TrainerRank
from mstar_ray.config import MStarConfig
from mstar_ray.prm.model import StepLabeledExample
from mstar_ray.records import Prompt, PromptRollouts, Sample, TrainExample
from mstar_ray.rollout.engine import EngineSpec
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
        spec = EngineSpec(
            cfg.rollout.backend,
            model_path,
            cfg.model.dtype,
            r.gpus_per_rollout_worker > 0,
            cfg.rollout.sequences_per_call,
            cfg.rollout.vllm,
            cfg.run.seed,
        )
        self.names = [f"rollout-{i}" for i in range(r.rollout_workers)]
        self.workers = [
            RolloutWorker.options(
                name=name, num_cpus=r.cpus_per_rollout_worker, num_gpus=r.gpus_per_rollout_worker
            ).remote(name, spec, r.torch_threads, r.cpus_per_rollout_worker)
            for name in self.names
        ]

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, prefixes: Sequence[str] | None = None
    ) -> list[PromptRollouts]:
        """Samples for every prompt (continuing its response prefix, when given), in the order given."""
        shards = _split_evenly(prompts, len(self.workers))
        prefix_shards = _split_evenly(prefixes, len(self.workers)) if prefixes is not None else [None] * len(shards)
        refs = [
            w.generate.remote(shard, params, prefix_shard)
            for w, shard, prefix_shard in zip(self.workers, shards, prefix_shards, strict=True)
            if shard
        ]
        return [group for part in ray.get(refs) for group in part]

    @contextmanager
    def asleep(self) -> Iterator[None]:
        """Release the engines' accelerator memory for the block (when rollout.vllm.sleep_while_training)."""
        ray.get([w.sleep.remote() for w in self.workers])
        try:
            yield
        finally:
            ray.get([w.wake_up.remote() for w in self.workers])

    def weights_versions(self) -> list[int | None]:
        return ray.get([w.weights_version.remote() for w in self.workers])


class TrainerGroup:
    """DeepSpeed ranks `trainer-0..N-1` forming one process group; rank 0 hosts the rendezvous.

    With `prm_meta` the ranks (`prm-trainer-0..`) train a process reward model from `model_path` instead.
    """

    def __init__(self, cfg: MStarConfig, model_path: str, prm_meta: dict | None = None) -> None:
        r = cfg.resources
        count, name = (r.trainer_ranks, "trainer") if prm_meta is None else (cfg.prm.train.trainer_ranks, "prm-trainer")
        self.names = [f"{name}-{i}" for i in range(count)]
        self.ranks = [
            TrainerRank.options(name=rank_name, num_cpus=r.cpus_per_trainer, num_gpus=r.gpus_per_trainer).remote(
                r.torch_threads, r.cpus_per_trainer
            )
            for rank_name in self.names
        ]
        addr, port = ray.get(self.ranks[0].rendezvous_address.remote())
        specs = [DistributedSpec(i, count, addr, port, r.gpus_per_trainer > 0) for i in range(count)]
        if prm_meta is None:
            setups = [
                rank.setup.remote(model_path, spec, cfg.model.dtype, cfg.train.freeze_vision)
                for rank, spec in zip(self.ranks, specs, strict=True)
            ]
        else:
            freeze = cfg.prm.train.freeze_vision
            setups = [
                rank.setup_prm.remote(model_path, spec, cfg.model.dtype, freeze, prm_meta)
                for rank, spec in zip(self.ranks, specs, strict=True)
            ]
        ray.get(setups)

    def shutdown(self) -> None:
        """Stop the ranks and free their resources."""
        for rank in self.ranks:
            ray.kill(rank)

    def start_stage(self, optim: OptimSpec, reset_to_base: bool = False) -> None:
        """Fresh optimizer and schedule on every rank."""
        self.optim = optim
        ray.get([rank.start_stage.remote(optim, reset_to_base) for rank in self.ranks])

    def snapshot_base(self) -> None:
        """Every rank remembers its current weights as the ReST-EM base."""
        ray.get([rank.snapshot_base.remote() for rank in self.ranks])

    def train(self, examples: Sequence[TrainExample | StepLabeledExample], epochs: int, seed: int) -> list[TrainStats]:
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


class PRMGroup:
    """PRM actors `prm-0..N-1`; responses to score are split evenly over them."""

    def __init__(self, cfg: MStarConfig, prm_path: str) -> None:
        r = cfg.resources
        self.workers = [
            PRMWorker.options(name=f"prm-{i}", num_cpus=r.cpus_per_prm_worker, num_gpus=r.gpus_per_prm_worker).remote(
                prm_path,
                cfg.model.dtype,
                r.gpus_per_prm_worker > 0,
                cfg.prm.batch_size,
                r.torch_threads,
                r.cpus_per_prm_worker,
            )
            for i in range(r.prm_workers)
        ]

    def score(self, rollouts: Sequence[PromptRollouts], only_correct: bool = False) -> int:
        """Set `step_scores` on every sample (or every verified-correct one); returns how many were scored."""
        targets: list[tuple[Prompt, Sample]] = [
            (group.prompt, s) for group in rollouts for s in group.samples if s.correct or not only_correct
        ]
        shards = _split_evenly([(prompt, s.text) for prompt, s in targets], len(self.workers))
        refs = [w.score.remote(shard) for w, shard in zip(self.workers, shards, strict=True) if shard]
        scores = [row for part in ray.get(refs) for row in part]
        for (_, sample), step_scores in zip(targets, scores, strict=True):
            sample.step_scores = step_scores
        return len(targets)
