"""One DeepSpeed data-parallel rank of SFT on (prompt, response) pairs, loss on response tokens only.

The same code runs on GPUs (NCCL) and on the CPU (gloo). Ranks must run the same number of micro-batches per
call, which `shard_examples` guarantees.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mstar_ray.config import LoRAConfig
from mstar_ray.core.determinism import seed_process
from mstar_ray.core.records import TrainExample
from mstar_ray.core.seeds import derive_seed
from mstar_ray.models.encoding import IGNORE_INDEX, collate, encode_example
from mstar_ray.models.freeze import freeze_vision_tower
from mstar_ray.models.loading import load_policy, load_processor
from mstar_ray.models.lora import adapted_names, apply_lora, is_lora, policy_weights
from mstar_ray.sync.buckets import SyncPlan
from mstar_ray.sync.sender import WeightSender

log = logging.getLogger("mstar")

STATE_TAG = "state"  # DeepSpeed checkpoint tag of a trainer state directory


@dataclass(frozen=True)
class DistributedSpec:
    """Where this rank sits in the trainer group."""

    rank: int
    world_size: int
    master_addr: str
    master_port: int
    use_gpu: bool
    deterministic: bool = False  # run.deterministic: gradients reduced without overlapping the backward pass


@dataclass(frozen=True)
class OptimSpec:
    """Optimizer and batching settings of one training stage."""

    lr: float
    micro_batch_size: int
    grad_accum_steps: int = 1
    zero_stage: int = 2
    weight_decay: float = 0.0
    warmup_steps: int = 0
    decay_steps: int = 0
    grad_clip: float = 1.0
    reduce_bucket_size: int = 500_000_000  # gradient elements per ZeRO reduction bucket


@dataclass(frozen=True)
class PolicyOptions:
    """How a rank loads and adapts the model it trains."""

    dtype: str = "float32"
    freeze_vision: bool = False
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    lora: LoRAConfig | None = None  # train adapters only (None: all weights)
    seed: int = 0  # run.seed: what a rank draws (fresh adapter weights, dropout masks) derives from it


@dataclass
class TrainStats:
    """What one `train` call did on this rank."""

    micro_batches: int
    optimizer_steps: int
    mean_loss: float
    response_tokens: int  # supervised targets: response tokens (policy) or steps (PRM)
    steps_in_stage: int  # optimizer steps since the stage started (carries across calls in continuous mode)
    learning_rate: float  # after the last step
    epoch_losses: list[float]  # mean loss of each pass over the shard


def mean_loss(stats: Sequence[TrainStats]) -> float:
    """Loss averaged over the ranks of one training call."""
    return sum(s.mean_loss for s in stats) / len(stats)


def lr_multiplier(step: int, warmup_steps: int, decay_steps: int) -> float:
    """Linear warm-up, then cosine decay to 10% over `decay_steps` (0: constant), then flat."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if decay_steps == 0:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def shard_examples(
    examples: Sequence[TrainExample], world_size: int, per_rank_multiple: int, seed: int
) -> list[list[TrainExample]]:
    """Shuffle and split examples evenly over ranks, repeating a few so each shard is a whole number of steps."""
    if not examples:
        return [[] for _ in range(world_size)]
    order = list(examples)
    random.Random(seed).shuffle(order)
    chunk = world_size * per_rank_multiple
    padded = order + order[: (-len(order)) % chunk] if len(order) >= chunk else (order * chunk)[:chunk]
    return [padded[r::world_size] for r in range(world_size)]


def init_distributed(spec: DistributedSpec) -> None:
    """Join the trainer group's process group (NCCL on GPUs, gloo on the CPU)."""
    import deepspeed

    os.environ.update(
        MASTER_ADDR=spec.master_addr,
        MASTER_PORT=str(spec.master_port),
        RANK=str(spec.rank),
        WORLD_SIZE=str(spec.world_size),
        LOCAL_RANK="0",  # Ray gives each GPU actor its own CUDA_VISIBLE_DEVICES
    )
    deepspeed.init_distributed(dist_backend="nccl" if spec.use_gpu else "gloo")


def deepspeed_config(optim: OptimSpec, dist: DistributedSpec, dtype: str) -> dict:
    """The DeepSpeed config of one stage."""
    zero = {"stage": optim.zero_stage, "reduce_bucket_size": optim.reduce_bucket_size}
    if dist.deterministic:
        zero["overlap_comm"] = False  # reductions overlapping the backward pass finish in timing-dependent order
    return {
        "train_micro_batch_size_per_gpu": optim.micro_batch_size,
        "gradient_accumulation_steps": optim.grad_accum_steps,
        "train_batch_size": optim.micro_batch_size * optim.grad_accum_steps * dist.world_size,
        "gradient_clipping": optim.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": dtype == "bfloat16"},
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": optim.lr, "weight_decay": optim.weight_decay, "torch_adam": not dist.use_gpu},
        },
        "steps_per_print": 10**9,
    }


class SFTTrainer:
    """A policy, its processor and a DeepSpeed engine on one rank.

    Subclasses train other models on other examples (the PRM) by overriding `_load_model`, `_encode` and `_loss`.
    """

    def __init__(self, model_path: str, dist: DistributedSpec, options: PolicyOptions = PolicyOptions()):
        init_distributed(dist)
        self.dist = dist
        self.options = options
        self.dtype = options.dtype
        self.device = torch.device("cuda" if dist.use_gpu else "cpu")
        self.processor = load_processor(model_path, options.trust_remote_code)
        seed_process(options.seed, "trainer_load")  # fresh LoRA adapters, weights a checkpoint lacks
        self.model = self._load_model(model_path).to(self.device)
        self.engine = None
        self._base: dict[str, torch.Tensor] | None = None
        self.sender = WeightSender(dist.rank)

    def _load_model(self, model_path: str) -> torch.nn.Module:
        o = self.options
        model = load_policy(model_path, o.dtype, o.trust_remote_code)
        if o.freeze_vision:
            log.info("froze %d vision-tower parameters of the policy", freeze_vision_tower(model))
        if o.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.config.use_cache = False
        if o.lora is not None:
            model = apply_lora(model, o.lora)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            log.info("LoRA r=%d: %d trainable adapter parameters", o.lora.r, trainable)
        return model

    def _encode(self, example: TrainExample) -> dict[str, torch.Tensor]:
        return encode_example(self.processor, example)

    def _collate(self, batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return collate(batch, self.processor.tokenizer.pad_token_id)

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Mean next-token loss on response tokens, and how many tokens it covers."""
        return self.engine(**batch).loss, int((batch["labels"] != IGNORE_INDEX).sum())

    def snapshot_base(self) -> None:
        """Remember the current weights as the base that ReST-EM restarts from (a CPU copy on every rank)."""
        import deepspeed

        module = self._module()
        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None, enabled=self._zero3()):
            self._base = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}

    def start_stage(self, optim: OptimSpec, reset_to_base: bool = False) -> None:
        """Build a fresh optimizer and LR schedule, optionally from the base weights first (ReST-EM)."""
        import deepspeed

        if self.engine is not None:
            # Without destroy() the old ZeRO optimizer's gradient hooks stay on the parameters and keep
            # filling a bucket that is never reduced, until it overflows and reduces cleared gradients.
            self.model = self.engine.module
            self.engine.destroy()
        if reset_to_base:
            if self._base is None:
                raise RuntimeError("reset_to_base needs snapshot_base() first")
            with deepspeed.zero.GatheredParameters(
                list(self.model.parameters()), modifier_rank=0, enabled=self._zero3()
            ):
                self.model.load_state_dict(self._base, strict=True)

        def schedule(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
            return torch.optim.lr_scheduler.LambdaLR(
                opt, lambda step: lr_multiplier(step, optim.warmup_steps, optim.decay_steps)
            )

        self.engine, *_ = deepspeed.initialize(
            model=self.model,
            model_parameters=[p for p in self.model.parameters() if p.requires_grad],
            config=deepspeed_config(optim, self.dist, self.dtype),
            lr_scheduler=schedule,
        )
        self.optim = optim

    def train(self, examples: Sequence, epochs: int = 1, seed: int = 0) -> TrainStats:
        """Run `epochs` passes over this rank's shard; every rank must pass shards of equal length."""
        if self.engine is None:
            raise RuntimeError("start_stage must be called before train")
        self.engine.train()
        seed_process(seed, "dropout", self.dist.rank)  # masks from the call's seed, whatever ran before
        encoded = [self._encode(ex) for ex in examples]
        mb = self.optim.micro_batch_size
        losses, epoch_losses, tokens, micro = [], [], 0, 0
        for epoch in range(epochs):
            first = len(losses)
            order = list(range(len(encoded)))
            random.Random(derive_seed(seed, "epoch", epoch)).shuffle(order)
            for start in range(0, len(order), mb):
                batch = self._collate([encoded[i] for i in order[start : start + mb]])
                batch = {k: v.to(self.device) for k, v in batch.items()}
                loss, targets = self._loss(batch)
                self.engine.backward(loss)
                self.engine.step()
                losses.append(float(loss.detach()))
                tokens += targets
                micro += 1
            epoch_losses.append(sum(losses[first:]) / max(1, len(losses) - first))
        mean = sum(losses) / max(1, len(losses))
        lr = float(self.engine.get_lr()[0])
        steps = micro // self.optim.grad_accum_steps
        return TrainStats(micro, steps, mean, tokens, self.steps_taken(), lr, epoch_losses)

    def weights_checksum(self) -> float:
        """Sum of every parameter on this rank, to check that ZeRO 0-2 data-parallel ranks hold the same weights."""
        return float(sum(p.detach().double().sum() for p in self._module().parameters()))

    def export_weights(self) -> dict[str, torch.Tensor]:
        """Full CPU copies of the policy weights on rank 0, {} elsewhere (all ranks join a ZeRO-3 gather)."""
        import deepspeed

        module = self._module()
        params = list(module.parameters())
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=self._zero3()):
            if self.dist.rank != 0:
                return {}
            weights = policy_weights(module, module.state_dict().items())
            return {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}

    def _sync_weights(self, merge: bool = True) -> tuple[dict[str, torch.Tensor], frozenset[str]]:
        """The weights the rollout engines hold, by their names, and which of them training changes (with LoRA and
        without `merge`: the base weights in place of the merged ones, enough to plan a sync)."""
        module = self._module()
        if is_lora(module):
            return policy_weights(module, module.named_parameters(), merge), adapted_names(module)
        params = dict(module.named_parameters())
        return params, frozenset(name for name, p in params.items() if p.requires_grad)

    def join_weight_sync(self, host: str, port: int, world_size: int, timeout_s: float) -> None:
        """Rank 0 hosts the group that broadcasts weights to the rollout engines."""
        self.sender.join(host, port, world_size, self.device, timeout_s)

    def plan_weight_sync(self, version: int, bucket_bytes: int) -> SyncPlan:
        """Rank 0: the buckets of the next sync."""
        return self.sender.plan(*self._sync_weights(merge=False), version, bucket_bytes)

    def probe_weight_sync(self, nbytes: int) -> float:
        """Rank 0: broadcast one flat buffer of `nbytes` over the sync group; returns its seconds."""
        return self.sender.group.probe(nbytes)

    def send_weights(self, plan: SyncPlan) -> int:
        """Broadcast the plan's weights (rank 0; other ranks join ZeRO-3 gathers); returns bytes sent."""
        if self.dist.rank != 0 and not self._zero3():
            return 0  # only rank 0 sends; other ranks take part only in ZeRO-3 gathers
        return self.sender.send(*self._sync_weights(), plan, self._zero3())

    def save_pretrained(self, out_dir: str) -> None:
        """Save the policy and processor as a Hugging Face checkpoint directory (rank 0 writes)."""
        weights = self.export_weights()
        if self.dist.rank != 0:
            return
        module = self._module()
        policy = module.get_base_model() if is_lora(module) else module
        policy.save_pretrained(out_dir, state_dict=weights)
        self.processor.save_pretrained(out_dir)

    def save_state(self, out_dir: str) -> None:
        """Write the DeepSpeed engine's state (weights, optimizer, LR schedule, step count); every rank writes its
        own optimizer partition, so `out_dir` must be storage every rank can reach. No random state: every
        `train` call seeds its own draws."""
        if self.engine is None:
            raise RuntimeError("save_state needs a started stage (start_stage)")
        self.engine.save_checkpoint(out_dir, tag=STATE_TAG, save_latest=False)

    def load_state(self, in_dir: str) -> None:
        """Restore what `save_state` wrote into the current stage's engine (start_stage first, same settings)."""
        if self.engine is None:
            raise RuntimeError("load_state needs a started stage (start_stage)")
        path, _ = self.engine.load_checkpoint(in_dir, tag=STATE_TAG)
        if path is None:
            raise FileNotFoundError(f"no trainer state under {in_dir}")

    def _zero3(self) -> bool:
        """Whether the parameters are partitioned across ranks (ZeRO-3) and must be gathered to be read whole."""
        return self.engine is not None and self.optim.zero_stage == 3

    def _module(self) -> torch.nn.Module:
        return self.engine.module if self.engine is not None else self.model

    def steps_taken(self) -> int:
        """Optimizer steps of the current stage."""
        return 0 if self.engine is None else int(self.engine.global_steps)
