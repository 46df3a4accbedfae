"""How much of what its Monte-Carlo step labels know does the PRM learn? An offline fit on a run's own labels.

    .venv/bin/python benchmarks/prm_fit.py runs/NAME [--lrs 1e-4 5e-4 2e-3] [--epochs 4] [--out NAME.json]

Reads RUN_DIR/prm_labels.jsonl and starts from RUN_DIR/checkpoints/pre_evolved, as the run's PRM phase does. Holds
out a fifth of the labelled prompts, trains the PRM (AdamW, batches of 8, vision tower frozen) on the rest at each
learning rate, and after every epoch reports the held-out binary cross-entropy against the soft labels beside two
references fitted on the same training prompts: the mean label for every step (a PRM that learned nothing) and, on
data with ground truth, the mean label of steps sharing the checker's view (position, verdict, all steps so far
true): what knowing each step's truth is worth on these labels. `learned` is the share of that gap the PRM closes.
Writes benchmarks/results/NAME.json (default prm_fit.json).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoProcessor

from mstar_ray.config.io import load_config
from mstar_ray.core.seeds import derive_seed
from mstar_ray.data.formats import load_prompts
from mstar_ray.eval.process import Verdict, check_step, has_truth, reasoning_steps
from mstar_ray.prm.labeling import read_step_labels
from mstar_ray.prm.model import ProcessRewardModel, StepLabeledExample, collate_steps, encode_steps

ROOT = Path(__file__).resolve().parents[1]
BATCH = 8


def bce(p: float, y: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def checker_view(example: StepLabeledExample, truth: dict) -> list[tuple]:
    """Per step: its position, the checker's verdict, and whether every step up to it is true."""
    view, sound = [], True
    for i, step in enumerate(example.steps):
        verdicts = {check_step(s, truth).verdict for s in reasoning_steps(step)}  # as step_label_separation reads
        verdict = "false" if Verdict.FALSE in verdicts else "true" if verdicts == {Verdict.TRUE} else "unverifiable"
        sound = sound and verdict == "true"
        view.append((i, verdict, sound))
    return view


def reference_losses(train: Sequence[StepLabeledExample], held: Sequence[StepLabeledExample], truth: dict) -> dict:
    labels = [v for ex in train for v in ex.labels]
    mean = sum(labels) / len(labels)
    held_labels = [v for ex in held for v in ex.labels]
    out = {"mean_label": round(mean, 4), "constant": sum(bce(mean, v) for v in held_labels) / len(held_labels)}
    if all(has_truth(truth.get(ex.prompt.id)) for ex in [*train, *held]):
        groups: dict[tuple, list[float]] = defaultdict(list)
        for ex in train:
            for key, v in zip(checker_view(ex, truth[ex.prompt.id]), ex.labels, strict=True):
                groups[key].append(v)
        means = {k: sum(v) / len(v) for k, v in groups.items()}
        losses = [
            bce(means.get(key, mean), v)
            for ex in held
            for key, v in zip(checker_view(ex, truth[ex.prompt.id]), ex.labels, strict=True)
        ]
        out["step_truth"] = sum(losses) / len(losses)
    return out


def held_out_loss(model: ProcessRewardModel, encoded: list[dict], pad_id: int) -> float:
    model.eval()
    total = steps = 0.0
    with torch.no_grad():
        for i in range(0, len(encoded), 16):
            batch = collate_steps(encoded[i : i + 16], pad_id)
            labels = batch.pop("step_labels")
            logits = model(**batch)
            total += torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="sum").item()
            steps += labels.numel()
    model.train()
    return total / steps


def fit(run_dir: Path, lr: float, epochs: int, train: list, held: list, seed: int) -> list[dict]:
    backbone = run_dir / "checkpoints" / "pre_evolved"
    processor = AutoProcessor.from_pretrained(backbone)
    model = ProcessRewardModel.from_pretrained(backbone, seed=derive_seed(seed, "prm_fit", "value_head"))
    model.freeze_vision()

    def encode(ex: StepLabeledExample) -> dict:
        return encode_steps(processor, ex.prompt, ex.steps) | {"step_labels": torch.tensor(ex.labels)}

    train_enc, held_enc = [encode(ex) for ex in train], [encode(ex) for ex in held]
    pad = processor.tokenizer.pad_token_id
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    curve, start = [], time.perf_counter()
    for epoch in range(epochs):
        order = list(range(len(train_enc)))
        random.Random(derive_seed(seed, "prm_fit", "order", epoch)).shuffle(order)
        losses = []
        for i in range(0, len(order), BATCH):
            batch = collate_steps([train_enc[j] for j in order[i : i + BATCH]], pad)
            labels = batch.pop("step_labels")
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(**batch), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        curve.append(
            {
                "epoch": epoch + 1,
                "train": round(sum(losses) / len(losses), 4),
                "held_out": round(held_out_loss(model, held_enc, pad), 4),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(f"lr {lr:g} epoch {epoch + 1}: {curve[-1]}", flush=True)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 5e-4, 2e-3])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", default="prm_fit.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    run_dir = args.run_dir
    config = load_config(run_dir / "config.yaml")
    seed = config.run.seed
    examples = read_step_labels(run_dir / "prm_labels.jsonl")
    d = config.data  # the labelled split as the run read it, for its ground truth
    prompts, _ = load_prompts(d.labeled, d.image_root, d.on_bad_row, d.check_images, True, d.columns, d.image_cache)
    truth = {p.id: p.truth for p in prompts}
    ids = sorted({ex.prompt.id for ex in examples})
    random.Random(derive_seed(seed, "prm_fit", "held_out")).shuffle(ids)
    held_ids = set(ids[: len(ids) // 5])
    train = [ex for ex in examples if ex.prompt.id not in held_ids]
    held = [ex for ex in examples if ex.prompt.id in held_ids]
    refs = reference_losses(train, held, truth)
    print(f"{len(train)} training responses, {len(held)} held out; references {refs}", flush=True)
    fits = []
    for lr in args.lrs:
        curve = fit(run_dir, lr, args.epochs, train, held, seed)
        best = min(point["held_out"] for point in curve)
        learned = (refs["constant"] - best) / (refs["constant"] - refs["step_truth"]) if "step_truth" in refs else None
        fits.append({"lr": lr, "curve": curve, "best_held_out": best, "learned": learned})
    result = {
        "run": run_dir.name,
        "labels": len(examples),
        "train_responses": len(train),
        "held_out_responses": len(held),
        "references": {k: round(v, 4) for k, v in refs.items()},
        "fits": fits,
    }
    print("| lr | best held-out BCE | constant | step truth known | share of the gap learned |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for f in fits:
        share = f"{f['learned']:.2f}" if f["learned"] is not None else "-"
        truth_loss = f"{refs['step_truth']:.4f}" if "step_truth" in refs else "-"
        print(f"| {f['lr']:g} | {f['best_held_out']:.4f} | {refs['constant']:.4f} | {truth_loss} | {share} |")
    out = ROOT / "benchmarks" / "results" / args.out
    out.write_text(json.dumps(result, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
