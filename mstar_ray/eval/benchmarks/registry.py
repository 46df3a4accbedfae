"""The benchmarks of the paper's results table, by the name `mstar eval --benchmarks` and `eval.benchmarks` use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mstar_ray.config import BENCHMARK_NAMES, OnBadRow
from mstar_ray.data.formats import LoadReport
from mstar_ray.eval.benchmarks import ai2d, m3cot, mathvista, mmbench, mmstar
from mstar_ray.eval.benchmarks.items import BenchItem


@dataclass(frozen=True)
class Benchmark:
    """How to load and score one benchmark, and its column in the results table."""

    name: str
    title: str  # column title, e.g. "MMStar-R" when the table reports the reasoning subset
    load: Callable[[str | Path, str | Path, OnBadRow, int | None], tuple[list[BenchItem], LoadReport]]
    score: Callable[[BenchItem, str], tuple[str | None, bool]]  # -> (prediction, correct)
    reasoning_subset: bool = False  # the table reports the "-R" subset (perception sub-tasks dropped)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(mathvista.NAME, "MathVista", mathvista.load, mathvista.score),
        Benchmark(m3cot.NAME, "M3CoT", m3cot.load, m3cot.score),
        Benchmark(mmstar.NAME, "MMStar-R", mmstar.load, mmstar.score, reasoning_subset=True),
        Benchmark(mmbench.NAME, "MMBench-R", mmbench.load, mmbench.score, reasoning_subset=True),
        Benchmark(ai2d.NAME, "AI2D", ai2d.load, ai2d.score),
    )
}

if tuple(BENCHMARKS) != BENCHMARK_NAMES:  # the config validates names against BENCHMARK_NAMES without this module
    raise ImportError(f"benchmark registry {tuple(BENCHMARKS)} and config BENCHMARK_NAMES {BENCHMARK_NAMES} differ")
