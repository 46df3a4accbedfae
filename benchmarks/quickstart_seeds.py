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


def table(results: list[dict]) -> str:
    """Test figures per seed and their mean ± sd: greedy and, where the data has ground truth, strict accuracy."""

    def stat(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {spread:.3f}"

    def column(stage: str, key: str) -> list[float]:
        return [r[stage].get(key) or 0.0 for r in results]

    rows = [
        "| seed | greedy before | after | gain | strict before | after | gain | Pass@K before | after | wall s |",
        "|" + " --- |" * 10,
    ]
    columns = [(stage, key) for key in ("greedy_accuracy", "strict_accuracy") for stage in ("pre_evolved", "final")]
    values = {c: column(*c) for c in columns + [("pre_evolved", "pass_at_k"), ("final", "pass_at_k")]}
    gains = {
        key: [f - p for p, f in zip(values["pre_evolved", key], values["final", key], strict=True)]
        for key in ("greedy_accuracy", "strict_accuracy")
    }
    for i, r in enumerate(results):
        cells = []
        for key in ("greedy_accuracy", "strict_accuracy"):
            cells += [f"{values['pre_evolved', key][i]:.3f}", f"{values['final', key][i]:.3f}", f"{gains[key][i]:+.3f}"]
        cells += [f"{values['pre_evolved', 'pass_at_k'][i]:.3f}", f"{values['final', 'pass_at_k'][i]:.3f}"]
        rows.append(f"| {r['seed']} | {' | '.join(cells)} | {r['process_seconds']:.0f} |")
    means = []
    for key in ("greedy_accuracy", "strict_accuracy"):
        means += [stat(values["pre_evolved", key]), stat(values["final", key]), stat(gains[key])]
    means += [stat(values["pre_evolved", "pass_at_k"]), stat(values["final", "pass_at_k"])]
    seconds = statistics.mean(r["process_seconds"] for r in results)
    rows.append(f"| mean ± sd | {' | '.join(means)} | {seconds:.0f} |")
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
