"""The `mstar` command as a user runs it: data and model preparation, evaluation, and fast config errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

pytestmark = pytest.mark.slow


def mstar(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mstar_ray", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_bad_config_fails_before_ray_with_the_key(tmp_path: Path) -> None:
    result = mstar("run", "--config", "/nonexistent.yaml", cwd=tmp_path)
    assert result.returncode != 0
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {path: m}\ndata: {labeled: l, validation: v, test: t}\nloop: {top_k: 40}\n")
    result = mstar("run", "--config", str(cfg), "train.lrr=1", cwd=tmp_path)
    assert result.returncode == 2
    assert "train.lrr: unknown key" in result.stderr and "loop.top_k (40)" not in result.stderr
    result = mstar("run", "--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 2 and "loop.top_k (40) is larger than rollout.samples_per_prompt" in result.stderr
    assert "Started a local Ray instance" not in result.stdout + result.stderr


def test_missing_data_file_is_reported_before_ray(tmp_path: Path, tiny_model: Path) -> None:
    args = [f"model.path={tiny_model}", f"data.labeled={tmp_path}/none.json", "data.validation=v", "data.test=t"]
    result = mstar("run", "--config", "/dev/null", *args, cwd=tmp_path)
    assert result.returncode == 2 and "data.labeled: dataset not found" in result.stderr
    assert "Started a local Ray instance" not in result.stdout + result.stderr


def test_make_data_make_model_and_eval(tmp_path: Path) -> None:
    data, model = tmp_path / "data", tmp_path / "model"
    made = mstar(
        "make-data",
        "--out",
        str(data),
        "--seed-size",
        "4",
        "--labeled",
        "4",
        "--validation",
        "3",
        "--test",
        "5",
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    rows = json.loads((data / "test.json").read_text())
    assert len(rows) == 5 and all((data / r["image"]).is_file() for r in rows)
    assert mstar("make-model", "--out", str(model), cwd=tmp_path).returncode == 0
    assert type(AutoModelForImageTextToText.from_pretrained(model)).__name__ == "Qwen2VLForConditionalGeneration"
    assert AutoProcessor.from_pretrained(model).tokenizer.chat_template

    out = tmp_path / "eval.json"
    args = [f"model.path={model}", f"data.labeled={data}/labeled.json", f"data.validation={data}/validation.json"]
    args += [
        f"data.test={data}/test.json",
        "ray.num_cpus=2",
        "rollout.samples_per_prompt=3",
        "rollout.max_new_tokens=8",
    ]
    result = mstar("eval", "--config", "/dev/null", "--out", str(out), *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(out.read_text())
    assert payload["prompts"] == 5 and payload["k"] == 3 and payload["split"] == "test"
    assert 0.0 <= payload["greedy_accuracy"] <= 1.0 and 0.0 <= payload["pass_at_k"] <= 1.0


def test_prm_label_then_train_then_run_with_the_trained_prm(tmp_path: Path, tiny_data, tiny_model: Path) -> None:
    d = tiny_data
    common = [
        f"model.path={tiny_model}",
        f"data.labeled={d['labeled']}",
        f"data.validation={d['validation']}",
        f"data.test={d['test']}",
        "ray.num_cpus=2",
        "resources.cpus_per_rollout_worker=0.5",
        "resources.cpus_per_trainer=0.5",
        "resources.cpus_per_prm_worker=0.5",
        "rollout.samples_per_prompt=2",
        "rollout.max_new_tokens=12",
        "prm.enabled=true",
    ]
    labels, prm_dir = tmp_path / "labels.jsonl", tmp_path / "prm"
    label_args = ["prm.label.prompts=3", "prm.label.responses_per_prompt=2", "prm.label.completions_per_step=2"]
    result = mstar("prm", "label", "--config", "/dev/null", "--out", str(labels), *common, *label_args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout[result.stdout.index("{\n") :])
    rows = [json.loads(line) for line in labels.read_text().splitlines()]
    assert report["prompts"] == 3 and report["responses"] == len(rows) > 0 and report["policy"] == str(tiny_model)

    args = ["--labels", str(labels), "--out", str(prm_dir), *common, "prm.train.epochs=1"]
    result = mstar("prm", "train", "--config", "/dev/null", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {"value_head.safetensors", "prm_config.json", "config.json"} <= {p.name for p in prm_dir.iterdir()}

    run_args = [f"prm.path={prm_dir}", "loop.selection=prm_top_k", "loop.iterations=1", "loop.interval=0.25"]
    run_args += [f"run.output_dir={tmp_path}", "run.name=with_prm", "train.micro_batch_size=2"]
    result = mstar("run", "--config", "/dev/null", *common, *run_args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "with_prm" / "summary.json").read_text())
    assert summary["selection"] == "prm_top_k" and summary["final"]["reward_pass_at_2"] is not None
    assert not (tmp_path / "with_prm" / "prm").exists()  # the given PRM was used, none trained
    assert summary["final"]["strict_accuracy"] is not None  # the synthetic rows carry their ground truth
    # What the actors printed is in the run's log files, not on the console
    logs = tmp_path / "with_prm" / "logs"
    assert {"rollout-0.log", "trainer-0.log", "prm-0.log"} <= {p.name for p in logs.iterdir()}
    assert "real_accelerator" not in result.stdout + result.stderr and "actor output" in result.stdout  # DeepSpeed's
    assert summary["profile"]["phases"]["test"]["compute"]["rollout-0"] > 0  # the final evaluation's profile

    out = tmp_path / "eval.json"  # a split evaluated with a given PRM: Reward-Pass@2 and the PRM's pairwise figures
    args = ["--split", "test", "--out", str(out), *common, f"prm.path={prm_dir}"]
    result = mstar("eval", "--config", "/dev/null", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(out.read_text())
    assert payload["prm"] == str(prm_dir) and payload["reward_pass_at_2"] is not None and "prm_pairs" in payload


def test_prm_label_policy_is_refused_by_run(tmp_path: Path, tiny_model: Path, tiny_data) -> None:
    args = [f"model.path={tiny_model}", f"data.labeled={tiny_data['labeled']}"]
    args += [f"data.validation={tiny_data['validation']}", "loop.eval_test=false", "prm.enabled=true"]
    result = mstar("run", "--config", "/dev/null", *args, f"prm.label.policy={tiny_model}", cwd=tmp_path)
    assert result.returncode == 2 and "prm.label.policy is for `mstar prm label`" in result.stderr


def test_ablate_runs_base_and_variants_and_writes_tables(tmp_path: Path, tiny_data, tiny_model: Path) -> None:
    d = tiny_data
    run_config = {
        "ray": {"num_cpus": 2},
        "model": {"path": str(tiny_model)},
        "data": {k: str(d[s]) for k, s in [("labeled", "labeled"), ("validation", "validation"), ("test", "test")]},
        "resources": {"cpus_per_rollout_worker": 0.5, "cpus_per_trainer": 0.5, "cpus_per_prm_worker": 0.5},
        "rollout": {"samples_per_prompt": 2, "max_new_tokens": 12},
        "train": {"micro_batch_size": 2},
        "prm": {"enabled": True, "label": {"prompts": 2, "responses_per_prompt": 2, "completions_per_step": 1}},
        "loop": {"iterations": 1, "interval": 0.25, "eval_every": 0},
        "checkpoint": {"every": 0},
    }
    (tmp_path / "run.yaml").write_text(json.dumps(run_config))  # JSON is YAML
    rows = [
        {"name": "SFT only", "evolve": False},
        {"name": "Random-1", "overrides": ["loop.selection=random_k", "loop.top_k=1"]},
        {"name": "Random-1 again", "overrides": ["loop.top_k=1", "loop.selection=random_k"]},  # same config
        {"name": "PRM top-1", "overrides": ["loop.selection=prm_top_k", "loop.top_k=1"]},
    ]
    spec = {"config": str(tmp_path / "run.yaml"), "seeds": [3], "tables": [{"title": "Selection", "rows": rows}]}
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    out = tmp_path / "ablation"
    result = mstar("ablate", "--spec", str(tmp_path / "spec.yaml"), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    results = json.loads((out / "ablation.json").read_text())
    cells = results["tables"][0]["rows"]
    assert [r["name"] for r in cells] == [r["name"] for r in rows] and all(len(r["runs"]) == 1 for r in cells)
    runs = sorted(p.name for p in (out / "seed3").iterdir() if p.is_dir())
    assert len(runs) == 3 and sum(name.startswith("base-") for name in runs) == 1  # base + two distinct variants
    assert cells[1]["runs"][0]["test"] == cells[2]["runs"][0]["test"]
    base = json.loads(next((out / "seed3").glob("base-*/summary.json")).read_text())
    assert base["iterations"] == 0 and cells[0]["runs"][0]["test"] == base["final"]
    table = (out / "ablation.md").read_text()
    assert "### Selection" in table and "| PRM top-1 |" in table and table in result.stdout
    # Finished runs are reused: a second call runs nothing and writes the same tables.
    again = mstar("ablate", "--spec", str(tmp_path / "spec.yaml"), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0 and "ablation run" not in again.stdout + again.stderr
    assert json.loads((out / "ablation.json").read_text()) == results
