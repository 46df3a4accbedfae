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
    assert result.returncode == 2 and "dataset file not found" in result.stderr
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


def test_prm_label_policy_is_refused_by_run(tmp_path: Path, tiny_model: Path, tiny_data) -> None:
    args = [f"model.path={tiny_model}", f"data.labeled={tiny_data['labeled']}"]
    args += [f"data.validation={tiny_data['validation']}", "loop.eval_test=false", "prm.enabled=true"]
    result = mstar("run", "--config", "/dev/null", *args, f"prm.label.policy={tiny_model}", cwd=tmp_path)
    assert result.returncode == 2 and "prm.label.policy is for `mstar prm label`" in result.stderr
