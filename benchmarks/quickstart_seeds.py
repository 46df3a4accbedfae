"""Run the quickstart config with several run seeds and tabulate pre-evolved vs final test accuracy.

    .venv/bin/python benchmarks/quickstart_seeds.py --seeds 0 1 2 [--name PREFIX] [--out NAME.json] [key.sub=value ...]

Prints a markdown table and writes benchmarks/results/NAME.json (default quickstart_seeds.json). Each seed is a separate
`mstar run` process (its own in-process Ray), run one after the other, named PREFIX followed by the seed (default
`quickstart-seed`). `{seed}` in an override is replaced by the run's seed, so a variant can start from each seed's
own pre-evolved model and PRM: `model.path=runs/quickstart-seed{seed}/checkpoints/pre_evolved
seed_sft.enabled=false prm.path=runs/quickstart-seed{seed}/prm`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_seed(seed: int, prefix: str, overrides: list[str]) -> dict:
    name = f"{prefix}{seed}"
    cmd = [sys.executable, "-m", "mstar_ray", "run", "--config", "configs/quickstart.yaml"]
    cmd += [f"run.seed={seed}", f"run.name={name}", *(o.replace("{seed}", str(seed)) for o in overrides)]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((ROOT / "runs" / name / "summary.json").read_text())
    return {"seed": seed, "process_seconds": round(time.perf_counter() - start, 1)} | summary


METRICS = {"greedy_accuracy": "greedy", "strict_accuracy": "strict", "pass_at_k": "Pass@K"}


def table(results: list[dict]) -> str:
    """Test figures per seed, before, after and their gain, with the mean ± sd; nan where a run lacks a figure
    (strict accuracy needs data with ground truth), and no mean then."""

    def figure(run: dict, stage: str, key: str) -> float:
        value = run[stage].get(key)
        return math.nan if value is None else value

    def stat(values: list[float]) -> str:
        if any(math.isnan(v) for v in values):
            return "n/a"
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {spread:.3f}"

    columns = []  # per metric: the before, after and gain columns
    for key in METRICS:
        before = [figure(r, "pre_evolved", key) for r in results]
        after = [figure(r, "final", key) for r in results]
        columns += [before, after, [a - b for b, a in zip(before, after, strict=True)]]
    header = " | ".join(f"{name} before | after | gain" for name in METRICS.values())
    rows = [f"| seed | {header} | wall s |", "|" + " --- |" * (2 + len(columns))]
    for i, r in enumerate(results):
        cells = [
            "n/a" if math.isnan(c[i]) else f"{c[i]:+.3f}" if n % 3 == 2 else f"{c[i]:.3f}"
            for n, c in enumerate(columns)
        ]
        rows.append(f"| {r['seed']} | {' | '.join(cells)} | {r['process_seconds']:.0f} |")
    seconds = statistics.mean(r["process_seconds"] for r in results)
    rows.append(f"| mean ± sd | {' | '.join(stat(c) for c in columns)} | {seconds:.0f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--name", default="quickstart-seed", help="run names: this prefix and the seed")
    parser.add_argument("--out", default="quickstart_seeds.json", help="file name under benchmarks/results/")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    results = [run_seed(s, args.name, args.overrides) for s in args.seeds]
    out = ROOT / "benchmarks" / "results" / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"name": args.name, "overrides": args.overrides, "runs": results}, indent=2))
    print(table(results))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
