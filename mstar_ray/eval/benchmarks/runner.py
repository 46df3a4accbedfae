"""`mstar eval` on the paper's benchmarks: load them, greedy-decode every item, score, and write the results."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mstar_ray.config import MStarConfig, OnBadRow, RunStage
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.data.formats import LoadReport
from mstar_ray.eval.benchmarks.items import BenchItem
from mstar_ray.eval.benchmarks.registry import BENCHMARKS
from mstar_ray.eval.benchmarks.results import ItemResult, TableRow, benchmark_table, score_items, summarize
from mstar_ray.eval.validation import Generator

log = logging.getLogger("mstar")

STAGES = tuple(stage.value for stage in RunStage)  # a run directory's benchmarks/<stage>/, in order
RUN_RESULTS = "benchmarks"  # the folder of a run directory holding each stage's results


def benchmark_cache(cfg: MStarConfig) -> Path:
    """Where the benchmarks' embedded images are written (eval.image_cache, else run.output_dir/image_cache)."""
    return Path(cfg.eval.image_cache or Path(cfg.run.output_dir) / "image_cache")


def benchmark_params(cfg: MStarConfig) -> SamplingParams:
    """Greedy decoding up to eval.max_new_tokens (else rollout.max_new_tokens)."""
    max_new_tokens = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
    return SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=cfg.run.seed)


def _row(path: Path) -> TableRow:
    payload = json.loads(path.read_text())
    return TableRow(Path(payload["model"]).name or payload["model"], payload["stage"], payload["benchmarks"])


def stage_table(results_dir: str | Path, stages: Sequence[str]) -> str:
    """The results table of a run's evaluated stages, one row per `results_dir/<stage>/benchmarks.json` found."""
    paths = [Path(results_dir) / stage / "benchmarks.json" for stage in stages]
    rows = [_row(path) for path in paths if path.is_file()]
    return benchmark_table(rows) if rows else ""


def evaluate_run_stage(
    cfg: MStarConfig, generator: Generator, benchmarks: Mapping[str, LoadedBenchmark], run_dir: Path, stage: str
) -> None:
    """A run's benchmarks at one stage into `run_dir/benchmarks/<stage>/`, and the table of the stages evaluated so
    far into `run_dir/benchmark_table.md`."""
    out = run_dir / RUN_RESULTS
    payload = evaluate_benchmarks(generator, benchmarks, benchmark_params(cfg), out / stage, cfg.model.path, stage)
    (run_dir / "benchmark_table.md").write_text(stage_table(out, STAGES))
    headline = {name: round(b["headline"], 4) for name, b in payload["benchmarks"].items()}
    log.info("benchmarks at %s: %s", stage, headline)


def stage_headlines(run_dir: Path) -> dict[str, dict[str, float]]:
    """Each evaluated stage's headline accuracy per benchmark (the -R subsets for MMStar and MMBench)."""
    out = {}
    for stage in STAGES:
        path = run_dir / RUN_RESULTS / stage / "benchmarks.json"
        if path.is_file():
            out[stage] = {name: b["headline"] for name, b in json.loads(path.read_text())["benchmarks"].items()}
    return out


def results_rows(path: str | Path) -> list[TableRow]:
    """Table rows of a benchmarks.json file, an `mstar eval` output folder, or a run directory (its stages)."""
    path = Path(path)
    candidates = [path, path / "benchmarks.json", *(path / RUN_RESULTS / s / "benchmarks.json" for s in STAGES)]
    rows = [_row(p) for p in candidates if p.is_file() and p.name == "benchmarks.json"]
    if not rows:
        raise FileNotFoundError(f"{path}: no benchmarks.json (give an `mstar eval` output or a run directory)")
    return rows


@dataclass(frozen=True)
class LoadedBenchmark:
    """A benchmark's usable items and what its load skipped."""

    name: str
    items: list[BenchItem]
    report: LoadReport


def load_benchmarks(
    paths: Mapping[str, str], cache_dir: str | Path, on_bad_row: OnBadRow, limit: int | None = None
) -> dict[str, LoadedBenchmark]:
    """Load each named benchmark from its local path (at most `limit` items each), counting skipped rows."""
    loaded = {}
    for name, path in paths.items():
        if name not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        items, report = BENCHMARKS[name].load(path, cache_dir, on_bad_row, limit)
        if not items:
            raise ValueError(f"{name}: no usable items in {path} (skipped: {dict(report.skipped)})")
        if report.skipped:
            log.warning("%s: skipped %s", name, dict(report.skipped))
        loaded[name] = LoadedBenchmark(name, items, report)
    return loaded


def _write_predictions(path: Path, results: Sequence[ItemResult]) -> None:
    with path.open("w") as f:
        for result in results:
            f.write(json.dumps(result.to_dict()) + "\n")


def evaluate_benchmarks(
    generator: Generator,
    benchmarks: Mapping[str, LoadedBenchmark],
    params: SamplingParams,
    out_dir: str | Path,
    model: str = "",
    stage: str = "",
) -> dict:
    """Greedy-decode every item once (all benchmarks in one call, spread over the generator's workers), score, and
    write `benchmarks.json`, `benchmark_predictions/<name>.jsonl` and `benchmark_table.md` into `out_dir`."""
    prompts = [item.prompt for bench in benchmarks.values() for item in bench.items]
    rollouts = generator.generate(prompts, params.with_(n=1, temperature=0.0))
    responses = iter(r.samples[0].text for r in rollouts)
    out = Path(out_dir)
    (out / "benchmark_predictions").mkdir(parents=True, exist_ok=True)
    summaries = {}
    for name, bench in benchmarks.items():
        results = score_items(name, bench.items, [next(responses) for _ in bench.items])
        summaries[name] = summarize(name, results) | {"load": bench.report.to_dict()}
        _write_predictions(out / "benchmark_predictions" / f"{name}.jsonl", results)
    payload = {"model": model, "stage": stage, "max_new_tokens": params.max_new_tokens, "benchmarks": summaries}
    (out / "benchmarks.json").write_text(json.dumps(payload, indent=2))
    table = benchmark_table([TableRow(Path(model).name or model, stage, summaries)])
    (out / "benchmark_table.md").write_text(table)
    return payload
