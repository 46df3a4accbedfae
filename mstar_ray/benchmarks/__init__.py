"""The paper's evaluation benchmarks (MathVista, M3CoT, MMStar-R, MMBench-R, AI2D) read from their published files.

Each benchmark module turns rows of its published layout into `BenchItem`s (a `Prompt` in the project's response
format plus what scoring needs) and scores a response by its own rules; `results` aggregates and tabulates, and
`evaluate` runs the whole evaluation over a rollout group.
"""

from mstar_ray.benchmarks.evaluate import LoadedBenchmark, evaluate_benchmarks, load_benchmarks
from mstar_ray.benchmarks.items import BenchItem
from mstar_ray.benchmarks.registry import BENCHMARKS, Benchmark
from mstar_ray.benchmarks.results import ItemResult, TableRow, benchmark_table, score_items, summarize

__all__ = [
    "BENCHMARKS",
    "BenchItem",
    "Benchmark",
    "ItemResult",
    "LoadedBenchmark",
    "TableRow",
    "benchmark_table",
    "evaluate_benchmarks",
    "load_benchmarks",
    "score_items",
    "summarize",
]
