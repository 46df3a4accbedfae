"""Reproducibility of the rollout engines, and what `run.deterministic` costs, measured side by side in one run.

    .venv/bin/python benchmarks/reproducibility.py [--model DIR] [--data DIR] [--backends transformers vllm]

1. Identical samples. Each backend samples the same prompts (K samples each, one seed) as one worker would, as two
   workers would (the prompts split in two consecutive shards, as the rollout group splits them), with a wide and a
   narrow batch (transformers: `rollout.sequences_per_call` 512 and 32; vLLM: `rollout.vllm.max_num_seqs` its
   default and 16), with deterministic kernels, and in a second, fresh engine (an engine restart). Each setting's
   samples are compared with the first's: the share of identical samples and of prompts whose K samples all agree.
2. Cost. Tokens per second of each backend, and seconds per training step of one DeepSpeed rank (a plain torch
   AdamW step where DeepSpeed is not installed), with and without `run.deterministic`; and the training step with
   torch's filling of uninitialized memory left on, which `run.deterministic` turns off.

Every engine and trainer runs in a fresh Python process of its own (the deterministic switches are process-wide,
and vLLM takes one engine per process), so the script needs neither Ray nor a GPU; on a GPU it measures the GPU
paths (`--device cuda`). Prints tables and writes benchmarks/results/reproducibility.json (or --out).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDE, NARROW = {"transformers": 512, "vllm": None}, {"transformers": 32, "vllm": 16}


def _repo_relative(path: Path) -> str:
    """`path` relative to the repository when it lies inside it, else its last part."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else resolved.name


def _cell(spec: dict) -> dict:
    """Run one engine or trainer in a fresh process (this script with --cell) and return what it measured."""
    command = [sys.executable, str(Path(__file__).resolve()), "--cell", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"cell {spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _engine(spec: dict):
    from mstar_ray.config import VLLMConfig

    if spec["backend"] == "vllm":
        from mstar_ray.rollout.vllm_engine import VLLMRolloutEngine

        options = VLLMConfig(kv_cache_gib=1, max_model_len=1024, max_num_seqs=spec["batch"])
        return VLLMRolloutEngine(spec["model"], "float32", spec["device"] == "cuda", options, 0, False, spec["det"])
    from mstar_ray.rollout.hf_engine import TransformersRolloutEngine

    return TransformersRolloutEngine(spec["model"], "float32", spec["device"], spec["batch"])


def _prompts(spec: dict) -> list:
    from mstar_ray.data.llava import load_prompts

    return load_prompts(Path(spec["data"]) / "validation.json")[0][: spec["prompts"]]


def run_sampling_cell(spec: dict) -> dict:
    """Samples per worker count (consecutive shards on one engine), then tokens/s over `repeats` calls."""
    from mstar_ray.core.sampling import SamplingParams

    engine, prompts = _engine(spec), _prompts(spec)
    params = SamplingParams(n=spec["samples"], temperature=1.0, max_new_tokens=spec["max_new_tokens"], seed=0)
    engine.generate(prompts[:4], params.with_(seed=99))  # warm-up
    samples = {}
    for workers in spec["workers"]:
        size = -(-len(prompts) // workers)
        shards = [prompts[i : i + size] for i in range(0, len(prompts), size)]
        groups = [g for shard in shards for g in engine.generate(shard, params)]
        samples[str(workers)] = [[s.text for s in g.samples] for g in groups]
    seconds, tokens = [], []
    for repeat in range(spec["repeats"]):
        start = time.perf_counter()
        groups = engine.generate(prompts, params.with_(seed=1000 + repeat))
        seconds.append(time.perf_counter() - start)
        tokens.append(sum(s.num_tokens for g in groups for s in g.samples))
    rates = [t / s for t, s in zip(tokens, seconds, strict=True)]
    return {"samples": samples, "tokens_per_second": round(statistics.median(rates), 1), "tokens": tokens}


def run_training_cell(spec: dict) -> dict:
    """Seconds per optimizer step over `steps` steps after a warm-up, on one rank."""
    import socket

    import torch

    from mstar_ray.core.records import TrainExample
    from mstar_ray.data.llava import load_prompts

    prompts = load_prompts(Path(spec["data"]) / "seed.json")[0]
    examples = [TrainExample(p, p.reference) for p in prompts][: 4 * spec["steps"]]
    if importlib.util.find_spec("deepspeed") is None:
        return _plain_torch_steps(spec, examples)
    from mstar_ray.training.sft import DistributedSpec, OptimSpec, PolicyOptions, SFTTrainer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist = DistributedSpec(0, 1, "127.0.0.1", port, spec["device"] == "cuda", spec["det"])
    trainer = SFTTrainer(spec["model"], dist, PolicyOptions())
    trainer.start_stage(OptimSpec(lr=1e-4, micro_batch_size=4))
    trainer.train(examples[:4], epochs=1)  # warm-up
    start = time.perf_counter()
    stats = trainer.train(examples, epochs=1)
    torch.cuda.synchronize() if spec["device"] == "cuda" else None
    return {"trainer": "deepspeed", "seconds_per_step": (time.perf_counter() - start) / stats.optimizer_steps}


def _plain_torch_steps(spec: dict, examples: list) -> dict:
    import torch

    from mstar_ray.models.encoding import collate, encode_example
    from mstar_ray.models.loading import load_policy, load_processor

    processor, model = load_processor(spec["model"]), load_policy(spec["model"]).to(spec["device"]).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = [examples[i : i + 4] for i in range(0, len(examples), 4)]

    def step(batch: list) -> None:
        encoded = collate([encode_example(processor, ex) for ex in batch], processor.tokenizer.pad_token_id)
        model(**{k: v.to(spec["device"]) for k, v in encoded.items()}).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step(batches[0])  # warm-up
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    torch.cuda.synchronize() if spec["device"] == "cuda" else None
    return {"trainer": "torch", "seconds_per_step": (time.perf_counter() - start) / len(batches)}


def cell_main(spec: dict) -> None:
    import torch

    from mstar_ray.core.determinism import use_deterministic_kernels

    torch.set_num_threads(spec["threads"])
    if spec["det"]:
        use_deterministic_kernels()
        torch.utils.deterministic.fill_uninitialized_memory = bool(spec.get("fill"))
    result = run_training_cell(spec) if spec["kind"] == "train" else run_sampling_cell(spec)
    print(json.dumps(result))


def identical(reference: list[list[str]], other: list[list[str]]) -> dict:
    """Shares of identical samples and of prompts whose samples all agree, against `reference`."""
    pairs = [(a, b) for ra, rb in zip(reference, other, strict=True) for a, b in zip(ra, rb, strict=True)]
    prompts = sum(ra == rb for ra, rb in zip(reference, other, strict=True)) / len(reference)
    return {"samples": round(sum(a == b for a, b in pairs) / len(pairs), 4), "prompts": round(prompts, 4)}


def measure_backend(backend: str, base: dict, rounds: int) -> tuple[list[dict], dict]:
    """Identical-sample shares and the determinism cost of one backend (tokens/s of every engine, with `rounds`
    more engines each way, started in turns, for the spread between processes)."""
    spec = base | {"kind": "sample", "backend": backend}
    wide = _cell(spec | {"batch": WIDE[backend], "det": False, "workers": [1, 2]})
    narrow = _cell(spec | {"batch": NARROW[backend], "det": False, "workers": [1, 2]})
    det = _cell(spec | {"batch": WIDE[backend], "det": True, "workers": [1]})
    restarted = _cell(spec | {"batch": WIDE[backend], "det": False, "workers": [1]})
    reference = wide["samples"]["1"]
    settings = [
        ("2 workers", wide["samples"]["2"]),
        ("narrow batch", narrow["samples"]["1"]),
        ("2 workers, narrow batch", narrow["samples"]["2"]),
        ("run.deterministic", det["samples"]["1"]),
        ("fresh engine (restart)", restarted["samples"]["1"]),
    ]
    rows = [{"backend": backend, "setting": name} | identical(reference, got) for name, got in settings]
    off, on = [wide, restarted], [det]
    for _ in range(rounds):
        on.append(_cell(spec | {"batch": WIDE[backend], "det": True, "workers": []}))
        off.append(_cell(spec | {"batch": WIDE[backend], "det": False, "workers": []}))
    cost = {"tokens_per_second": [c["tokens_per_second"] for c in off]}
    return rows, cost | {"deterministic_tokens_per_second": [c["tokens_per_second"] for c in on]}


def print_tables(rows: list[dict], costs: dict) -> None:
    print("| backend | against 1 worker, wide batch | identical samples | prompts with all K identical |")
    print("| --- | --- | ---: | ---: |")
    for r in rows:
        print(f"| {r['backend']} | {r['setting']} | {r['samples']:.1%} | {r['prompts']:.1%} |")
    print("\n| what (median over fresh processes, range) | without run.deterministic | with | with / without |")
    print("| --- | ---: | ---: | ---: |")
    lines = [(f"{b} tokens/s", c["tokens_per_second"], c["deterministic_tokens_per_second"])
             for b, c in costs.items() if b != "training"]  # fmt: skip
    t = costs["training"]
    lines.append((f"{t['trainer']} s/step", t["seconds_per_step"], t["deterministic_seconds_per_step"]))
    fill = t["deterministic_filling_memory_seconds_per_step"]
    lines.append((f"{t['trainer']} s/step, uninitialized memory filled", t["seconds_per_step"], fill))
    for what, without, with_ in lines:
        a, b = statistics.median(without), statistics.median(with_)
        ranges = [f"{statistics.median(v):.4g} ({min(v):.4g}-{max(v):.4g})" for v in (without, with_)]
        print(f"| {what} | {ranges[0]} | {ranges[1]} | {b / a:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, default=ROOT / ".quickstart" / "model")
    parser.add_argument("--data", type=Path, default=ROOT / ".quickstart" / "data")
    parser.add_argument("--backends", nargs="+", default=["transformers", "vllm"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2, help="more engines and trainers each way, for the spread")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="reproducibility.json")
    args = parser.parse_args()
    if args.cell:
        return cell_main(json.loads(args.cell))

    base = {"model": str(args.model), "data": str(args.data), "device": args.device, "threads": args.threads}
    base |= {"prompts": args.prompts, "samples": args.samples, "max_new_tokens": args.max_new_tokens}
    base |= {"repeats": args.repeats, "steps": args.train_steps}
    rows, costs = [], {}
    for backend in args.backends:
        backend_rows, costs[backend] = measure_backend(backend, base, args.rounds)
        rows += backend_rows
    settings = [(False, False), (True, False), (True, True)]  # (run.deterministic, uninitialized memory filled)
    train = lambda det, fill: _cell(base | {"kind": "train", "det": det, "fill": fill})  # noqa: E731
    rounds = [[train(det, fill) for det, fill in settings] for _ in range(args.rounds + 1)]
    steps = [[r[i]["seconds_per_step"] for r in rounds] for i in range(len(settings))]
    costs["training"] = {
        "trainer": rounds[0][0]["trainer"],
        "seconds_per_step": steps[0],
        "deterministic_seconds_per_step": steps[1],
        "deterministic_filling_memory_seconds_per_step": steps[2],
    }
    print(f"\n{args.prompts} prompts x {args.samples} samples, up to {args.max_new_tokens} tokens, {args.device}")
    print_tables(rows, costs)
    names = {k: _repo_relative(getattr(args, k)) for k in ("model", "data")}  # result files name no machine's paths
    settings = {k: v for k, v in vars(args).items() if k != "cell"} | names
    result = {"settings": settings, "identical_samples": rows, "cost": costs}
    out = ROOT / "benchmarks" / "results" / args.out
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
