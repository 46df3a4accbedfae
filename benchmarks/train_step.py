"""What a training micro-batch costs under each DeepSpeed ZeRO stage on one rank, measured side by side in one run.

    .venv/bin/python benchmarks/train_step.py [--model .quickstart/model] [--data .quickstart/data/seed.json]
        [--stages 0 2] [--micro-batch 8] [--steps 40] [--repeats 3] [--threads 2] [--out train_step.json]

One process is one trainer rank (gloo, world size 1) built by the project's own `SFTTrainer`, fine-tuning on the
gold chains of the seed set as seed SFT does. For each repeat, each ZeRO stage in turn gets a fresh DeepSpeed engine
(`start_stage`) and trains `--steps` micro-batches, timed in three parts: forward (loss), backward and the optimizer
step. The stages alternate within each repeat so that drift of the machine falls on all of them alike. Prints a
markdown table and writes benchmarks/results/NAME.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from mstar_ray.core.records import TrainExample
from mstar_ray.data.formats import load_prompts
from mstar_ray.sync.transport import free_port
from mstar_ray.training.sft import DistributedSpec, OptimSpec, SFTTrainer

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("forward", "backward", "step")


def timed_steps(trainer: SFTTrainer, encoded: list[dict], micro_batch: int, steps: int) -> dict[str, float]:
    """Seconds per micro-batch of each part, over `steps` micro-batches."""
    totals = dict.fromkeys(PARTS, 0.0)
    trainer.engine.train()
    for i in range(steps):
        start = (i * micro_batch) % (len(encoded) - micro_batch)
        batch = trainer._collate(encoded[start : start + micro_batch])
        t0 = time.perf_counter()
        loss, _ = trainer._loss(batch)
        t1 = time.perf_counter()
        trainer.engine.backward(loss)
        t2 = time.perf_counter()
        trainer.engine.step()
        t3 = time.perf_counter()
        for part, seconds in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            totals[part] += seconds
    return {part: seconds / steps for part, seconds in totals.items()}


def table(results: dict[int, list[dict[str, float]]]) -> str:
    base = None
    lines = [
        "| ZeRO stage | forward ms | backward ms | step ms | micro-batch ms (median of repeats) | vs first |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for stage, repeats in results.items():
        parts = {p: statistics.median(r[p] for r in repeats) * 1e3 for p in PARTS}
        total = statistics.median(sum(r.values()) for r in repeats) * 1e3
        base = base or total
        row = " | ".join(f"{parts[p]:.1f}" for p in PARTS)
        lines.append(f"| {stage} | {row} | {total:.1f} | {total / base:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=".quickstart/model")
    ap.add_argument("--data", default=".quickstart/data/seed.json")
    ap.add_argument("--stages", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the rank (the quickstart's trainer: 2)")
    ap.add_argument("--out", default="train_step.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prompts, _ = load_prompts(args.data)
    examples = [TrainExample(p, p.reference) for p in prompts if p.reference]
    if len(examples) <= args.micro_batch:
        raise SystemExit(f"{args.data}: {len(examples)} chains, need more than --micro-batch {args.micro_batch}")
    trainer = SFTTrainer(args.model, DistributedSpec(0, 1, "127.0.0.1", free_port(), use_gpu=False))
    encoded = [trainer._encode(ex) for ex in examples]
    results: dict[int, list[dict[str, float]]] = {stage: [] for stage in args.stages}
    for _ in range(args.repeats):
        for stage in args.stages:
            trainer.start_stage(OptimSpec(lr=1e-4, micro_batch_size=args.micro_batch, zero_stage=stage))
            timed_steps(trainer, encoded, args.micro_batch, 3)  # warm-up: first-touch of buffers and state
            results[stage].append(timed_steps(trainer, encoded, args.micro_batch, args.steps))
    print(table(results))
    out = ROOT / "benchmarks" / "results" / args.out
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    out.write_text(json.dumps({"settings": settings, "seconds_per_micro_batch": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
