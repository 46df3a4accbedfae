"""Where a run's time goes: run a config and tabulate every stage's wall time, each actor's compute in it, the bytes
moved and the orchestration overhead; with --before REF, the same run from that git commit first, side by side.

    .venv/bin/python benchmarks/run_profile.py [--config configs/quickstart.yaml] [--before REF ...] [--no-now]
        [--also-now LABEL:key=value,key=value ...] [--out NAME.json] [key.sub=value ...]

Prints a markdown table and writes benchmarks/results/NAME.json (default run_profile.json). Each variant is one
`mstar run` process (its own in-process Ray), one after the other: the --before commits (each from a git worktree
with this checkout's virtual environment and quickstart data), then this checkout with each --also-now set of
extra overrides, then this checkout as configured. A variant that fails is recorded with its error. A phase's
overhead is the part of its wall time in which no actor was working (see mstar_ray/telemetry/profile.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mstar_ray.telemetry.profile import run_stages, stage_overhead  # noqa: E402

STAGES = ("pre-evolution", "iterations", "final")


def run_variant(label: str, code: Path, config: str, overrides: list[str]) -> dict:
    """One `mstar run` from the code at `code`; its console, wall time and records."""
    name = f"profile-{label}"
    cmd = [sys.executable, "-m", "mstar_ray", "run", "--config", config, f"run.name={name}", "run.overwrite=true"]
    cmd += overrides
    env = os.environ | {"PYTHONPATH": str(code)}  # ahead of the editable install, in the driver and in Ray's workers
    console = ROOT / "runs" / f"{name}.console.log"
    console.parent.mkdir(exist_ok=True)
    start = time.perf_counter()
    with console.open("w") as out:
        subprocess.run(cmd, cwd=code, env=env, check=True, stdout=out, stderr=subprocess.STDOUT)
    process_seconds = time.perf_counter() - start
    run_dir = code / "runs" / name
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "label": label,
        "process_seconds": round(process_seconds, 1),
        "run_seconds": summary["wall_seconds"],
        "console_lines": len(console.read_text().splitlines()),
        "test": {k: summary[k]["greedy_accuracy"] for k in ("pre_evolved", "final")},
        "stages": run_stages(records, summary),
    }


def table(variants: list[dict]) -> str:
    head = "| stage / phase | " + " | ".join(f"{v['label']} s" for v in variants) + " | actors' compute, s (last) |"
    rows = [head, "|" + " --- |" * (len(variants) + 2)]
    for key, title in (("process_seconds", "`mstar run` process"), ("run_seconds", "inside the run")):
        rows.append(f"| {title} | " + " | ".join(f"{v[key]:.1f}" for v in variants) + " | |")
    last = variants[-1]["stages"]
    for stage in STAGES:
        if stage not in last:
            continue
        cells = [f"{v['stages'][stage]['wall']:.1f}" if stage in v["stages"] else "" for v in variants]
        rows.append(f"| **{stage}** | " + " | ".join(cells) + " | |")
        for phase, p in last[stage]["phases"].items():
            walls = [v["stages"].get(stage, {}).get("phases", {}).get(phase, {}).get("wall") for v in variants]
            cells = ["" if w is None else f"{w:.1f}" for w in walls]
            compute = p.get("compute") or {}
            actors = ", ".join(f"{a} {s:.1f}" for a, s in sorted(compute.items()) if s >= 0.05)
            rows.append(f"| - {phase} | " + " | ".join(cells) + f" | {actors} |")
        spent = [stage_overhead(v["stages"][stage]) if stage in v["stages"] else None for v in variants]
        rows.append("| - overhead | " + " | ".join("" if o is None else f"{o:.1f}" for o in spent) + " | |")
    rows.append("| console lines | " + " | ".join(str(v["console_lines"]) for v in variants) + " | |")
    return "\n".join(rows)


def attempt(label: str, code: Path, config: str, overrides: list[str]) -> dict:
    """`run_variant`, or the variant's error (the console log keeps the rest)."""
    try:
        return run_variant(label, code, config, overrides)
    except subprocess.CalledProcessError as err:
        console = f"runs/profile-{label}.console.log"
        return {"label": label, "error": f"mstar run exited with {err.returncode}; see {console}"}


def worktree(ref: str, into: Path) -> Path:
    """A checkout of `ref` beside this one, sharing its quickstart data and model."""
    subprocess.run(["git", "worktree", "add", "--detach", str(into), ref], cwd=ROOT, check=True, capture_output=True)
    (into / ".quickstart").symlink_to(ROOT / ".quickstart")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--before", nargs="+", default=[], help="git commits to profile first, each from a worktree")
    parser.add_argument("--no-now", action="store_true", help="profile only the --before commits")
    parser.add_argument("--also-now", nargs="+", default=[], help="LABEL:key=value,... runs of this checkout")
    parser.add_argument("--out", default="run_profile.json")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    variants = []
    with tempfile.TemporaryDirectory() as tmp:
        for ref in args.before:
            code = worktree(ref, Path(tmp) / ref)
            try:
                variants.append(attempt(ref, code, args.config, args.overrides) | {"ref": ref})
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(code)], cwd=ROOT, check=False)
    if not args.no_now:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        ref = head.stdout.strip() + (" with uncommitted changes" if dirty.strip() else "")
        for extra in args.also_now:
            label, _, settings = extra.partition(":")
            more = [kv for kv in settings.split(",") if kv]
            variants.append(attempt(label, ROOT, args.config, args.overrides + more) | {"ref": ref, "extra": more})
        variants.append(attempt("now", ROOT, args.config, args.overrides) | {"ref": ref})
    failed = [v for v in variants if "error" in v]
    variants = [v for v in variants if "error" not in v]
    for v in variants[1:]:
        v["speedup_over_first"] = round(variants[0]["run_seconds"] / v["run_seconds"], 3)
    text = table(variants) if variants else "no variant finished"
    print(text)
    out = ROOT / "benchmarks" / "results" / args.out
    result = {"config": args.config, "overrides": args.overrides, "variants": variants, "failed": failed}
    out.write_text(json.dumps(result, indent=2))
    for v in failed:
        print(f"{v['label']} failed: {v['error']}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
