"""Stages that produce the pre-evolved model: seed SFT on gold chains of thought, and the paper's warm-up."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from mstar_ray.config import MStarConfig
from mstar_ray.core.records import Prompt, TrainExample
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.core.seeds import derive_seed
from mstar_ray.eval.metrics import mark_correct
from mstar_ray.groups.rollout import RolloutGroup
from mstar_ray.groups.trainers import PolicyTrainerGroup
from mstar_ray.training.sft import OptimSpec, mean_loss

log = logging.getLogger("mstar")


def optim_spec(cfg: MStarConfig, lr: float) -> OptimSpec:
    """The optimizer settings of `cfg.train` with a stage's learning rate."""
    t = cfg.train
    return OptimSpec(
        lr=lr,
        micro_batch_size=t.micro_batch_size,
        grad_accum_steps=t.grad_accum_steps,
        zero_stage=t.zero_stage,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_steps,
        decay_steps=t.decay_steps,
        grad_clip=t.grad_clip,
    )


def seed_sft(
    cfg: MStarConfig, rollout: RolloutGroup, trainers: PolicyTrainerGroup, seed_prompts: Sequence[Prompt]
) -> dict[str, float]:
    """Fine-tune on the gold chain-of-thought seed set (the engines asleep while the trainers train)."""
    examples = [TrainExample(p, p.reference) for p in seed_prompts if p.reference]
    with rollout.asleep():
        trainers.start_stage(optim_spec(cfg, cfg.seed_sft.lr))
        stats = trainers.train(examples, cfg.seed_sft.epochs, derive_seed(cfg.run.seed, "seed_sft"))
    log.info("seed SFT: %d examples x %d epochs, loss %.3f", len(examples), cfg.seed_sft.epochs, mean_loss(stats))
    return {"examples": len(examples), "loss": mean_loss(stats)}


def answer_conditioned(prompt: Prompt) -> Prompt:
    """The warm-up prompt: the question plus its answer, asking for a step-by-step analysis."""
    hint = (
        f"\n\nThe correct answer is {prompt.answer}. Give a detailed step-by-step analysis that reaches it, "
        "with a blank line between steps, and end with '# Answer' followed by the answer."
    )
    return replace(prompt, question=prompt.question + hint)


def warmup(
    cfg: MStarConfig, rollout: RolloutGroup, trainers: PolicyTrainerGroup, labeled: Sequence[Prompt]
) -> dict[str, float]:
    """Generate answer-conditioned chains of thought, keep correct ones, and train on them with the plain prompt
    (the engines asleep while the trainers train)."""
    prompts = list(labeled[: cfg.warmup.max_prompts])
    params = SamplingParams(
        n=cfg.warmup.samples_per_prompt,
        temperature=cfg.rollout.temperature,
        top_p=cfg.rollout.top_p,
        top_k=cfg.rollout.top_k,
        max_new_tokens=cfg.rollout.max_new_tokens,
        seed=derive_seed(cfg.run.seed, "warmup"),
    )
    rollouts = rollout.generate([answer_conditioned(p) for p in prompts], params)
    mark_correct(rollouts)
    # generate keeps the prompts' order; ids may repeat or be empty in real data
    examples = [
        TrainExample(original, text)
        for original, group in zip(prompts, rollouts, strict=True)
        for text in dict.fromkeys(s.text for s in group.samples if s.correct)
    ]
    log.info("warm-up: %d correct responses from %d prompts", len(examples), len(prompts))
    if not examples:
        return {"prompts": len(prompts), "examples": 0, "loss": float("nan")}
    with rollout.asleep():
        trainers.start_stage(optim_spec(cfg, cfg.warmup.lr))
        stats = trainers.train(examples, 1, derive_seed(cfg.run.seed, "warmup_train"))
    return {"prompts": len(prompts), "examples": len(examples), "loss": mean_loss(stats)}
