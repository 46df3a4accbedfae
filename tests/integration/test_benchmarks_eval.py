"""`mstar eval --benchmarks` as a user runs it: the tiny model on all five benchmark fixtures over 2 rollout workers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_fixtures import EXPECTED, write_all

pytestmark = pytest.mark.slow


def test_mstar_eval_on_the_five_benchmarks(tmp_path: Path, tiny_data: dict[str, Path], tiny_model: Path) -> None:
    paths = write_all(tmp_path / "benchmarks")
    out = tmp_path / "eval"
    args = ["eval", "--config", "/dev/null", "--benchmarks", *(f"{name}={path}" for name, path in paths.items())]
    args += ["--out", str(out), "--stage", "final", f"model.path={tiny_model}", f"run.output_dir={tmp_path}/runs"]
    args += [f"data.{split}={tiny_data[split]}" for split in ("labeled", "validation", "test")]
    args += ["ray.num_cpus=2", "resources.rollout_workers=2", "resources.cpus_per_rollout_worker=0.5"]
    args += ["eval.max_new_tokens=16"]
    result = subprocess.run(
        [sys.executable, "-m", "mstar_ray", *args], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]

    payload = json.loads((out / "benchmarks.json").read_text())
    assert payload["stage"] == "final" and payload["model"] == str(tiny_model) and payload["max_new_tokens"] == 16
    assert list(payload["benchmarks"]) == list(paths)
    for name, summary in payload["benchmarks"].items():
        kept, skipped = EXPECTED[name]
        assert summary["load"]["skipped"] == skipped
        lines = (out / "benchmark_predictions" / f"{name}.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert len(records) == summary["items"] == kept  # every usable item was answered and scored
        assert all(isinstance(r["response"], str) and "prediction" in r for r in records)
        assert summary["correct"] == sum(r["correct"] for r in records)
        assert summary["accuracy"] == pytest.approx(summary["correct"] / kept)
        for subtask, figures in summary["subtasks"].items():
            assert figures["correct"] == sum(r["correct"] for r in records if r["subtask"] == subtask)
        if "reasoning" in summary:
            assert summary["reasoning"]["items"] == sum(r["reasoning"] for r in records)
    assert (Path(tmp_path) / "runs" / "image_cache").is_dir()  # embedded images were written once, there

    table = (out / "benchmark_table.md").read_text()
    assert table.startswith("| model | stage | MathVista | M3CoT | MMStar-R | MMBench-R | AI2D | avg |\n")
    assert f"| {tiny_model.name} | final | " in table and "| ALL | FQA | GPS | MWP | TQA | VQA |" in table
    assert table in result.stdout
