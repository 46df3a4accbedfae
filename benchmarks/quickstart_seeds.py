"""Run the quickstart config with several run seeds and tabulate pre-evolved vs final test accuracy.

    .venv/bin/python benchmarks/quickstart_seeds.py --seeds 0 1 2 [--out NAME.json] [key.sub=value ...]

Prints a markdown table and writes benchmarks/results/NAME.json (default quickstart_seeds.json). Each seed is a separate
`mstar run` process (its own in-process Ray), run one after the other.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_seed(seed: int, overrides: list[str]) -> dict:
    name = f"quickstart-seed{seed}"
    cmd = [sys.executable, "-m", "mstar_ray", "run", "--config", "configs/quickstart.yaml"]
    cmd += [f"run.seed={seed}", f"run.name={name}", *overrides]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((ROOT / "runs" / name / "summary.json").read_text())
    return {"seed": seed, "process_seconds": round(time.perf_counter() - start, 1)} | summary


def table(results: list[dict]) -> str:
    def stat(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {spread:.3f}"

    rows = [
        "| seed | pre-evolved greedy | final greedy | gain | pre Pass@K | final Pass@K | wall s |",
        "|" + " --- |" * 7,
    ]
    gains = []
    for r in results:
        pre, fin = r["pre_evolved"], r["final"]
        gains.append(fin["greedy_accuracy"] - pre["greedy_accuracy"])
        rows.append(
            f"| {r['seed']} | {pre['greedy_accuracy']:.3f} | {fin['greedy_accuracy']:.3f} | {gains[-1]:+.3f} | "
            f"{pre['pass_at_k']:.3f} | {fin['pass_at_k']:.3f} | {r['process_seconds']:.0f} |"
        )
    pre_g = [r["pre_evolved"]["greedy_accuracy"] for r in results]
    fin_g = [r["final"]["greedy_accuracy"] for r in results]
    pre_p = [r["pre_evolved"]["pass_at_k"] for r in results]
    fin_p = [r["final"]["pass_at_k"] for r in results]
    secs = [r["process_seconds"] for r in results]
    rows.append(
        f"| mean ± sd | {stat(pre_g)} | {stat(fin_g)} | {stat(gains)} | {stat(pre_p)} | {stat(fin_p)} "
        f"| {statistics.mean(secs):.0f} |"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="quickstart_seeds.json", help="file name under benchmarks/results/")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    results = [run_seed(s, args.overrides) for s in args.seeds]
    out = ROOT / "benchmarks" / "results" / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"overrides": args.overrides, "runs": results}, indent=2))
    print(table(results))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
