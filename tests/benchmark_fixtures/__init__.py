"""Tiny copies of the five benchmarks in their published on-disk layouts, for tests.

Parquet files are written by `datasets` with the features the Hugging Face dataset cards declare (images as
`datasets.Image` structs with embedded bytes), TSVs like VLMEvalKit's (base64 images), MathVista also as the GitHub
`testmini.json` with an `images/` folder. Each has a few good rows and a few bad ones; `EXPECTED` gives what a
load should keep and skip.
"""

from __future__ import annotations

from pathlib import Path

from benchmark_fixtures.choice import (
    write_ai2d,
    write_m3cot,
    write_mmbench_parquet,
    write_mmbench_tsv,
    write_mmstar_parquet,
    write_mmstar_tsv,
)
from benchmark_fixtures.mathvista import write_mathvista_json, write_mathvista_parquet

__all__ = [
    "EXPECTED",
    "write_ai2d",
    "write_all",
    "write_m3cot",
    "write_mathvista_json",
    "write_mathvista_parquet",
    "write_mmbench_parquet",
    "write_mmbench_tsv",
    "write_mmstar_parquet",
    "write_mmstar_tsv",
]

EXPECTED = {
    "mathvista": (9, {"missing image": 1, "no answer": 1, "unreadable image": 1}),
    "m3cot": (4, {"answer not among the options": 1, "missing image": 1}),
    "mmstar": (6, {"missing image": 1}),
    "mmbench": (6, {"unreadable image": 1, "answer not among the options": 1}),
    "ai2d": (3, {"answer not among the options": 1}),
}


def write_all(root: Path) -> dict[str, Path]:
    """Every benchmark in one of its layouts, by the names `mstar eval --benchmarks` takes."""
    return {
        "mathvista": write_mathvista_parquet(root / "MathVista"),
        "m3cot": write_m3cot(root / "M3CoT"),
        "mmstar": write_mmstar_parquet(root / "MMStar"),
        "mmbench": write_mmbench_tsv(root / "MMBench"),
        "ai2d": write_ai2d(root / "ai2d"),
    }
