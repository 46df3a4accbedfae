"""Rollout throughput of the vLLM backend against the transformers backend, side by side in one run.

    .venv/bin/python benchmarks/rollout_throughput.py [--model DIR] [--prompts 64] [--samples 8] [--max-new-tokens 96]

Both backends run as a rollout actor on the same model, prompts (the synthetic task's validation images and
questions) and sampling settings; each is timed over the same `generate` calls after one warm-up call. Prints a
markdown table and writes benchmarks/results/rollout_throughput.json. The default model is the quickstart's
(`make quickstart` builds it; a trained checkpoint gives realistic response lengths).
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


def measure(backend: str, args: argparse.Namespace) -> dict:
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
        ],
    )
    prompts = load_datasets(cfg).validation[: args.prompts]
    rollout = RolloutGroup(cfg, str(args.model))
    params = SamplingParams(n=args.samples, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    rollout.generate(prompts[:4], params)  # warm-up
    seconds, tokens = [], []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        groups = rollout.generate(prompts, params.with_(seed=repeat))
        seconds.append(time.perf_counter() - start)
        tokens.append(sum(s.num_tokens for g in groups for s in g.samples))
    ray.kill(rollout.workers[0])
    return {
        "backend": backend,
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
    parser.add_argument("--out", default="rollout_throughput.json")
    args = parser.parse_args()

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    rows = [measure(backend, args) for backend in ("transformers", "vllm")]
    ray.shutdown()
    speedup = rows[1]["tokens_per_second"] / rows[0]["tokens_per_second"]

    print(f"\nmodel {args.model}, {args.prompts} prompts x {args.samples} samples, up to {args.max_new_tokens} tokens")
    print("| backend | sampled tokens | seconds | tokens/s |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        med = statistics.median(r["seconds"])
        print(f"| {r['backend']} | {statistics.median(r['sampled_tokens'])} | {med:.2f} | {r['tokens_per_second']} |")
    print(f"vLLM / transformers: {speedup:.1f}x")
    model = _repo_relative(args.model)  # result files name no machine's paths
    result = {"model": model, "settings": vars(args) | {"model": model}, "rows": rows}
    result["vllm_over_transformers"] = round(speedup, 2)
    out = ROOT / "benchmarks" / "results" / args.out
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
