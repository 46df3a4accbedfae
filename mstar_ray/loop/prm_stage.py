"""The PRM's two preparation steps as the CLI and the driver run them: label steps, then train the PRM."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path

from mstar_ray.config import MStarConfig
from mstar_ray.core.records import Prompt
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.core.seeds import derive_seed
from mstar_ray.eval.process_metrics import labels_as_prm, step_label_separation
from mstar_ray.eval.validation import Generator
from mstar_ray.groups.placement import Placement
from mstar_ray.groups.trainers import PRMTrainerGroup
from mstar_ray.loop.run_dir import RunDir
from mstar_ray.prm.labeling import LabelingSpec, label_steps, read_step_labels, write_step_labels
from mstar_ray.prm.model import StepLabeledExample
from mstar_ray.telemetry.profile import BusySpan
from mstar_ray.training.sft import OptimSpec

log = logging.getLogger("mstar")


def label_prompts(cfg: MStarConfig, generator: Generator, labeled: Sequence[Prompt], out: str | Path) -> dict:
    """Monte-Carlo step labels for `prm.label.prompts` labeled prompts drawn at random (from run.seed: data files
    are often sorted, so the first ones would not be typical), written to `out` (JSONL)."""
    spec = cfg.prm.label
    start = time.perf_counter()
    sampling = SamplingParams(
        temperature=spec.temperature,
        top_p=cfg.rollout.top_p,
        top_k=cfg.rollout.top_k,
        max_new_tokens=cfg.rollout.max_new_tokens,
        seed=derive_seed(cfg.run.seed, "prm_labels"),
    )
    labeling = LabelingSpec(spec.responses_per_prompt, spec.completions_per_step, spec.kind, sampling)
    chosen = random.Random(derive_seed(cfg.run.seed, "prm_label_prompts")).sample(
        list(labeled), min(spec.prompts, len(labeled))
    )  # files may be sorted
    examples = label_steps(generator, chosen, labeling)
    write_step_labels(out, examples, spec.kind)
    steps = [v for ex in examples for v in ex.labels]
    report = {
        "path": str(out),
        "prompts": len(chosen),
        "responses": len(examples),
        "steps": len(steps),
        "mean_step_label": sum(steps) / len(steps) if steps else None,  # None: no response had a step
        "responses_correct": sum(ex.labels[-1] == 1.0 for ex in examples),
        # Where the prompts have ground truth: do the labels tell true steps from false ones?
        "step_truth": step_label_separation([(ex.prompt.id, ex.steps, ex.labels, ex.prompt.truth) for ex in examples]),
        # ... and would a PRM that fitted them exactly rank a prompt's sound responses above its flawed ones?
        "labels_as_prm": labels_as_prm(
            [(ex.prompt.id, ex.steps, ex.labels, ex.prompt.truth, ex.labels[-1] == 1.0) for ex in examples]
        ),
        "seconds": round(time.perf_counter() - start, 1),
    }
    truth = report["step_truth"] or {}
    log.info(
        "PRM step labels: %d prompts, %d responses, %d steps in %.1f s%s (all figures in metrics.jsonl)",
        report["prompts"],
        report["responses"],
        report["steps"],
        report["seconds"],
        f"; labels tell true from false steps with AUC {truth['auc']:.3f}" if truth.get("auc") is not None else "",
    )
    return report


def train_prm(
    cfg: MStarConfig,
    examples: Sequence[StepLabeledExample],
    backbone: str,
    out_dir: str | Path,
    labels: str,
    placement: Placement | None = None,
    spans: list[BusySpan] | None = None,
) -> dict:
    """Train a PRM from `backbone` (a policy checkpoint or PRM directory) on step labels and save it to `out_dir`;
    with a placement group, the ranks take the PRM actors' bundles. The ranks' busy spans are added to `spans`."""
    t = cfg.prm.train
    start = time.perf_counter()
    meta = {
        "aggregation": cfg.prm.aggregation.value,
        "label_kind": cfg.prm.label.kind.value,
        "labels": labels,
        "backbone": str(backbone),
        "responses": len(examples),
        "freeze_vision": t.freeze_vision,
    }
    group = PRMTrainerGroup(cfg, str(backbone), meta, placement)
    try:
        group.start_stage(OptimSpec(t.lr, t.micro_batch_size, zero_stage=cfg.train.zero_stage, grad_clip=1.0))
        stats = group.train(examples, t.epochs, derive_seed(cfg.run.seed, "prm_train"))
        group.save_pretrained(str(out_dir))
        if spans is not None:
            spans += group.drain_busy()
    finally:
        group.shutdown()  # frees the ranks' CPUs / GPUs for the PRM scorers
    epoch_losses = [sum(s.epoch_losses[e] for s in stats) / len(stats) for e in range(t.epochs)]
    report = {
        "path": str(out_dir),
        "responses": len(examples),
        "steps": sum(len(ex.labels) for ex in examples),
        "step_updates": sum(s.response_tokens for s in stats),  # over epochs, with the shards' padding repeats
        "optimizer_steps": stats[0].optimizer_steps,
        "epoch_losses": epoch_losses,
        "seconds": round(time.perf_counter() - start, 1),
    }
    losses = " -> ".join(f"{x:.3f}" for x in epoch_losses)
    log.info(
        "PRM trained: %d epochs on %d responses, loss %s, %.1f s", t.epochs, len(examples), losses, report["seconds"]
    )
    return report


def prepare_prm(
    cfg: MStarConfig,
    generator: Generator,
    labeled: Sequence[Prompt],
    run: RunDir,
    placement: Placement | None,
    spans: list[BusySpan],
) -> tuple[str, dict]:
    """The PRM the run scores with: prm.path, or one trained from the pre-evolved checkpoint on prm.labels or on
    labels made now (its trainer ranks' busy spans added to `spans`). Returns its path and what was done."""
    p, report = cfg.prm, {}
    if p.path is not None:
        return p.path, {"path": p.path}
    if p.labels:
        examples, source = read_step_labels(p.labels), p.labels
    else:
        source = str(run.path / "prm_labels.jsonl")
        report["labels"] = label_prompts(cfg, generator, labeled, source)
        examples = read_step_labels(source)
    path, backbone = str(run.path / "prm"), str(run.checkpoints / "pre_evolved")
    report["train"] = train_prm(cfg, examples, backbone, path, source, placement, spans)
    return path, report | {"path": path}
