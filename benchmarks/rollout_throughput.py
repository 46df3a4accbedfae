"""Rollout throughput of the vLLM backend against the transformers backend, side by side in one run.

    .venv/bin/python benchmarks/rollout_throughput.py [--model DIR] [--prompts 64] [--samples 8] [--max-new-tokens 96]
        [--variants transformers vllm vllm:enforce_eager=true,max_num_seqs=1024 ...]

Each variant (a backend, for vLLM with `rollout.vllm.*` settings after a colon) runs as a rollout actor on the same
model, prompts (the synthetic task's validation images and questions) and sampling settings; each is timed over the
same `generate` calls after one warm-up call, and its start (actor and engine up, warm-up call done) is timed too.
Prints a markdown table and writes benchmarks/results/rollout_throughput.json. The default model is the
quickstart's (`make quickstart` builds it; a trained checkpoint gives realistic response lengths).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import ray

from mstar_ray.config.io import load_config
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.groups.rollout import RolloutGroup
from mstar_ray.loop.datasets import load_datasets

ROOT = Path(__file__).resolve().parents[1]


def _repo_relative(path: str | Path) -> str:
    """`path` relative to the repository when it lies inside it, else as given."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def measure(variant: str, args: argparse.Namespace) -> dict:
    backend, _, settings = variant.partition(":")
    vllm_settings = [f"rollout.vllm.{kv}" for kv in settings.split(",") if kv]
    data = ROOT / ".quickstart" / "data"
    cfg = load_config(
        None,
        [
            f"model.path={args.model}",
            f"data.labeled={data / 'labeled.json'}",
            f"data.validation={data / 'validation.json'}",
            "loop.eval_test=false",
            f"rollout.backend={backend}",
            "rollout.vllm.kv_cache_gib=1",
            "rollout.vllm.max_model_len=1024",
            f"rollout.sequences_per_call={args.sequences_per_call}",
            "resources.cpus_per_rollout_worker=2",
            "resources.torch_threads=2",
            *vllm_settings,
        ],
    )
    prompts = load_datasets(cfg).validation[: args.prompts]
    params = SamplingParams(n=args.samples, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    start = time.perf_counter()
    rollout = RolloutGroup(cfg, str(args.model))
    rollout.generate(prompts[:4], params)  # warm-up
    start_seconds = time.perf_counter() - start
    seconds, tokens = [], []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        groups = rollout.generate(prompts, params.with_(seed=repeat))
        seconds.append(time.perf_counter() - start)
        tokens.append(sum(s.num_tokens for g in groups for s in g.samples))
    ray.kill(rollout.workers[0])
    return {
        "variant": variant,
        "backend": backend,
        "start_seconds": round(start_seconds, 1),
        "sequences": len(prompts) * args.samples,
        "sampled_tokens": tokens,
        "seconds": [round(s, 3) for s in seconds],
        "tokens_per_second": round(statistics.median(t / s for t, s in zip(tokens, seconds, strict=True)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / ".quickstart" / "model")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sequences-per-call", type=int, default=512, help="transformers backend batch")
    parser.add_argument("--variants", nargs="+", default=["transformers", "vllm"])
    parser.add_argument("--out", default="rollout_throughput.json")
    args = parser.parse_args()

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    rows = [measure(variant, args) for variant in args.variants]
    ray.shutdown()

    print(f"\nmodel {args.model}, {args.prompts} prompts x {args.samples} samples, up to {args.max_new_tokens} tokens")
    print(f"| variant | start s | sampled tokens | seconds | tokens/s | over {rows[0]['variant']} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        med = statistics.median(r["seconds"])
        r["speedup_over_first"] = round(r["tokens_per_second"] / rows[0]["tokens_per_second"], 2)
        print(
            f"| {r['variant']} | {r['start_seconds']} | {statistics.median(r['sampled_tokens'])} | {med:.2f} | "
            f"{r['tokens_per_second']} | {r['speedup_over_first']}x |"
        )
    model = _repo_relative(args.model)  # result files name no machine's paths
    result = {"model": model, "settings": vars(args) | {"model": model}, "rows": rows}
    out = ROOT / "benchmarks" / "results" / args.out
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
