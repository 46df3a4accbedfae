"""`mstar compare`: two run directories agree when only timings and their own paths differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mstar_ray.cli import main
from mstar_ray.loop.compare import compare_runs


def _run(root: Path, name: str, val: float = 0.5, seconds: float = 1.0) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"run: {{output_dir: {root}, name: {name}}}\n")
    profile = {"phases": {"rollout": {"wall": seconds, "compute": {"rollout-0": seconds / 2}}}, "wall": seconds}
    records = [
        {"iteration": 0, "prm": {"path": str(run / "prm"), "seconds": seconds * 3}, "seconds": {"prm": seconds}},
        {
            "iteration": 1,
            "val_greedy_accuracy": val,
            "sync_gb_per_s": seconds,
            "seconds": {"rollout": seconds},
            "profile": profile,
        },
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "prompts.jsonl").write_text(json.dumps({"iteration": 1, "ids": ["p3", "p1"]}) + "\n")
    summary = {"final": {"greedy_accuracy": val}, "wall_seconds": seconds, "profile": profile}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_runs_that_differ_only_in_timings_and_paths_agree(tmp_path, capsys) -> None:
    a, b = _run(tmp_path, "a"), _run(tmp_path, "b", seconds=7.5)
    difference, compared = compare_runs(a, b)
    assert difference is None
    assert compared == ["metrics.jsonl (2 records)", "prompts.jsonl (1 records)", "summary.json"]
    assert main(["compare", str(a), str(b)]) == 0
    assert "identical" in capsys.readouterr().out


def test_a_run_directory_moved_after_its_run_still_compares_by_what_it_computed(tmp_path) -> None:
    a, b = _run(tmp_path, "a"), _run(tmp_path, "b")
    moved = a.rename(tmp_path / "a_first")  # its records still name tmp_path/a, where the run wrote them
    assert compare_runs(moved, b)[0] is None


def test_the_first_differing_record_and_field_is_named_and_the_command_fails(tmp_path, capsys) -> None:
    a, b = _run(tmp_path, "a", val=0.5), _run(tmp_path, "b", val=0.52)
    difference, _ = compare_runs(a, b)
    assert (difference.file, difference.record, difference.field) == ("metrics.jsonl", 1, "val_greedy_accuracy")
    assert (difference.a, difference.b) == (0.5, 0.52)
    assert main(["compare", str(a), str(b)]) == 1
    assert "metrics.jsonl record 1 field val_greedy_accuracy: 0.5 vs 0.52" in capsys.readouterr().out
    assert compare_runs(a, b, rtol=0.05)[0] is None  # within a stated tolerance


def test_missing_files_and_record_counts_differ(tmp_path) -> None:
    a, b = _run(tmp_path, "a"), _run(tmp_path, "b")
    with (b / "prompts.jsonl").open("a") as f:
        f.write(json.dumps({"iteration": 2, "ids": ["p0"]}) + "\n")
    assert str(compare_runs(a, b)[0]) == 'prompts.jsonl: "1 records" vs "2 records"'
    c, d = _run(tmp_path, "c"), _run(tmp_path, "d")
    (c / "prm_labels.jsonl").write_text("{}\n")
    assert str(compare_runs(c, d)[0]) == 'prm_labels.jsonl: "present" vs "absent"'
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        compare_runs(a, tmp_path)


def test_final_weights_are_compared_tensor_by_tensor(tmp_path, capsys) -> None:
    from safetensors.torch import save_file

    a, b = _run(tmp_path, "a"), _run(tmp_path, "b")
    weights = {"lm_head.weight": torch.arange(6.0).reshape(2, 3), "embed.weight": torch.ones(4)}
    for run in (a, b):
        (run / "checkpoints" / "final").mkdir(parents=True)
        save_file(weights, run / "checkpoints" / "final" / "model.safetensors")
    assert compare_runs(a, b)[1][-1] == "checkpoints/final (2 tensors)" and compare_runs(a, b)[0] is None
    nudged = weights | {"lm_head.weight": weights["lm_head.weight"] + 1e-6}
    save_file(nudged, b / "checkpoints" / "final" / "model.safetensors")
    difference = compare_runs(a, b)[0]
    assert (difference.file, difference.field) == ("checkpoints/final/model.safetensors", "lm_head.weight")
    assert main(["compare", str(a), str(b)]) == 1
    assert "lm_head.weight" in capsys.readouterr().out
    assert compare_runs(a, b, rtol=1e-5)[0] is None  # within the stated tolerance of the largest magnitude
    (b / "checkpoints" / "final" / "model.safetensors").unlink()
    assert compare_runs(a, b)[0].field == "(files)"
