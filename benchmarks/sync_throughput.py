"""Weight sync throughput against the transport's limit, measured side by side in one run.

    .venv/bin/python benchmarks/sync_throughput.py [--sizes 10 50 200] [--backend vllm] [--repeats 3]

For each model size (millions of parameters) it builds a random-weight Qwen2-VL of about that size, starts one
trainer rank and one rollout engine, forms the sync group, and times (a) full weight syncs (gather, pack into
buckets, broadcast, load with the engine's own loader) and (b) a raw broadcast of one flat buffer of the same bytes
over the same group (buffers made ready beforehand), both timed at the driver the same way. Prints a markdown table
and writes benchmarks/results/sync_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from pathlib import Path

import ray

from mstar_ray.config.io import load_config
from mstar_ray.groups.rollout import RolloutGroup
from mstar_ray.groups.trainers import PolicyTrainerGroup
from mstar_ray.loop import stages
from mstar_ray.sync.coordinator import WeightSync
from mstar_ray.toy.synthetic import corpus_texts
from mstar_ray.toy.tiny import TinyVLMSpec, build_tiny_vlm

ROOT = Path(__file__).resolve().parents[1]
# Qwen2-VL text stacks of about 10M, 50M and 200M parameters (head size 64, as real models use).
SPECS = {
    10: TinyVLMSpec(hidden_size=256, intermediate_size=768, num_layers=12, num_heads=4, num_kv_heads=2),
    50: TinyVLMSpec(hidden_size=512, intermediate_size=1536, num_layers=15, num_heads=8, num_kv_heads=2),
    200: TinyVLMSpec(hidden_size=1024, intermediate_size=3072, num_layers=15, num_heads=16, num_kv_heads=2),
}


def measure(model: Path, backend: str, repeats: int, bucket_mb: float) -> dict:
    cfg = load_config(
        None,
        [
            f"model.path={model}",
            "data.labeled=unused.json",
            "data.validation=unused.json",
            "loop.eval_test=false",
            f"rollout.backend={backend}",
            "rollout.vllm.kv_cache_gib=0.25",
            "rollout.vllm.max_model_len=1024",
            f"sync.bucket_mb={bucket_mb}",
            "resources.cpus_per_rollout_worker=1",
            "resources.cpus_per_trainer=1",
        ],
    )
    rollout, trainers = RolloutGroup(cfg, str(model)), PolicyTrainerGroup(cfg, str(model))
    trainers.start_stage(stages.optim_spec(cfg, cfg.train.lr))  # as in a run: DeepSpeed owns the parameters
    sync = WeightSync(cfg.sync, trainers, rollout)
    sync.sync(1)  # warm-up: first-touch of buffers and the engine's reload path
    syncs, loads, raws, wires = [], [], [], []
    for i in range(repeats):  # interleaved, so drift on the machine hits both alike
        stats = sync.sync(2 + i)
        syncs.append(stats.seconds)
        loads.append(stats.load_seconds)
        at_driver, in_broadcast = sync.probe(stats.bytes)
        raws.append(at_driver)
        wires.append(in_broadcast)
    trainers.shutdown()
    for worker in rollout.workers:
        ray.kill(worker)
    sync_s, raw_s = statistics.median(syncs), statistics.median(raws)
    return {
        "bytes": stats.bytes,
        "tensors": stats.tensors,
        "buckets": stats.buckets,
        "sync_seconds": [round(s, 4) for s in syncs],
        "raw_broadcast_seconds": [round(s, 4) for s in raws],  # timed at the driver, like sync_seconds
        "raw_broadcast_in_actor_seconds": [round(s, 4) for s in wires],  # the broadcast call alone
        "engine_load_seconds": [round(s, 4) for s in loads],  # inside the engine's loader, part of sync_seconds
        "sync_gb_per_s": round(stats.bytes / sync_s / 1e9, 3),
        "raw_gb_per_s": round(stats.bytes / raw_s / 1e9, 3),
        "ratio": round(raw_s / sync_s, 3),
    }


def count_parameters(model: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(model / "model.safetensors"), "pt") as f:
        return sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(SPECS), choices=sorted(SPECS))
    parser.add_argument("--backend", default="vllm", choices=["vllm", "transformers"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bucket-mb", type=float, default=32.0)
    parser.add_argument("--out", default="sync_throughput.json")
    args = parser.parse_args()

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    corpus = corpus_texts(n=300)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            model = build_tiny_vlm(corpus, Path(tmp) / f"m{size}", SPECS[size], seed=0)
            row = {"target_millions": size, "parameters": count_parameters(model), "backend": args.backend}
            row |= measure(model, args.backend, args.repeats, args.bucket_mb)
            print(json.dumps(row), flush=True)
            rows.append(row)
    ray.shutdown()

    print("\n| parameters | MB | buckets | sync s | raw broadcast s | sync GB/s | raw GB/s | sync / raw throughput |")
    print("|" + " --- |" * 8)
    for r in rows:
        print(
            f"| {r['parameters'] / 1e6:.1f}M | {r['bytes'] / 1e6:.0f} | {r['buckets']} | "
            f"{statistics.median(r['sync_seconds']):.3f} | {statistics.median(r['raw_broadcast_seconds']):.3f} | "
            f"{r['sync_gb_per_s']} | {r['raw_gb_per_s']} | {r['ratio']:.0%} |"
        )
    out = ROOT / "benchmarks" / "results" / args.out
    out.write_text(json.dumps({"bucket_mb": args.bucket_mb, "repeats": args.repeats, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
