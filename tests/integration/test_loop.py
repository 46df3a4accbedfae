"""The whole loop on a real local Ray cluster: real actors, DeepSpeed on gloo, weight sync, run files."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
import ray
import torch
from actor_probes import engine_weights, trainer_checksum
from benchmark_fixtures import write_all
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoModelForImageTextToText

from mstar_ray.config.io import load_config
from mstar_ray.groups.cluster import connect_ray
from mstar_ray.loop.datasets import load_datasets
from mstar_ray.loop.driver import MStarRun
from mstar_ray.loop.run_dir import RunDir

pytestmark = pytest.mark.slow


def _config(data: dict[str, Path], model: Path, out: Path, *extra: str):
    """Two trainer ranks and one rollout worker by default; `extra` overrides win."""
    return load_config(
        None,
        [
            f"model.path={model}",
            f"data.seed_cot={data['seed']}",
            f"data.labeled={data['labeled']}",
            f"data.validation={data['validation']}",
            f"data.test={data['test']}",
            f"run.output_dir={out}",
            "run.name=loop",
            "resources.torch_threads=1",
            "resources.rollout_workers=1",
            "resources.cpus_per_rollout_worker=1",
            "resources.trainer_ranks=2",
            "resources.cpus_per_trainer=0.5",
            "rollout.samples_per_prompt=8",
            "rollout.max_new_tokens=80",
            "train.lr=2e-4",
            "train.micro_batch_size=4",
            "seed_sft.enabled=true",
            "seed_sft.epochs=30",
            "seed_sft.lr=2e-3",
            "loop.iterations=2",
            "loop.interval=0.5",
            *extra,
        ],
    )


def test_two_iterations_train_sync_and_write_run_files(ray_cluster, tiny_data, tiny_model, tmp_path) -> None:
    warmup = ["warmup.enabled=true", "warmup.max_prompts=6", "warmup.samples_per_prompt=2"]
    benchmarks = [f"eval.benchmarks.{name}={path}" for name, path in write_all(tmp_path / "benchmarks").items()]
    benchmarks += ["eval.limit=1", "eval.max_new_tokens=16"]
    cfg = _config(tiny_data, tiny_model, tmp_path, "loop.selection=all_correct", *warmup, *benchmarks)
    connect_ray(cfg)
    run_dir = RunDir.create(cfg)
    loop = MStarRun(cfg, run_dir, load_datasets(cfg, benchmarks=True))
    summary = loop.fit()

    # The paper's table: each benchmark at the base model, after seed SFT + warm-up, and after the iterations.
    stages = ["base", "pre_evolved", "final"]
    assert list(summary["benchmarks"]) == stages
    table = (run_dir.path / "benchmark_table.md").read_text().splitlines()
    assert [line.split(" | ")[1] for line in table[2:5]] == stages and "MathVista testmini by task" in table[6]
    for stage in stages:
        payload = json.loads((run_dir.path / "benchmarks" / stage / "benchmarks.json").read_text())
        assert set(payload["benchmarks"]) == {"mathvista", "m3cot", "mmstar", "mmbench", "ai2d"}
        assert all(b["items"] == 1 for b in payload["benchmarks"].values())
        assert {n: b["headline"] for n, b in payload["benchmarks"].items()} == summary["benchmarks"][stage]

    # Sync: every rollout worker holds exactly trainer rank 0's weights, under the last version.
    trainer = ray.get(loop.trainers.export_weights_ref())
    for worker in loop.rollout.workers:
        rollout = engine_weights(worker)
        assert rollout.keys() == trainer.keys()
        assert all(torch.equal(rollout[k], trainer[k]) for k in trainer)
        # seed SFT, warm-up, 2 iterations
        assert ray.get(worker.weights_version.remote()) == loop.weights.version == 4

    # Training: every trainable parameter moved between the pre-evolved and the final checkpoint (reloaded).
    pre = dict(AutoModelForImageTextToText.from_pretrained(run_dir.checkpoints / "pre_evolved").named_parameters())
    final = dict(AutoModelForImageTextToText.from_pretrained(run_dir.checkpoints / "final").named_parameters())
    trainable = [n for n, p in final.items() if p.requires_grad]
    assert len(trainable) == len(final) > 50
    assert [n for n in trainable if torch.equal(pre[n], final[n])] == []
    final_state = AutoModelForImageTextToText.from_pretrained(run_dir.checkpoints / "final").state_dict()
    assert all(torch.equal(final_state[k], trainer[k]) for k in trainer)

    # Run files.
    lines = [json.loads(line) for line in (run_dir.path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in lines] == [0, 1, 2]
    pre_phases = {"start", "base_benchmarks", "seed_sft", "warmup", "checkpoint", "evaluate", "benchmarks", "test"}
    assert set(lines[0]["seconds"]) == pre_phases  # the pre-evolved model's dynamics too
    assert set(lines[0]["profile"]["phases"]) == pre_phases
    assert lines[0]["profile"]["phases"]["seed_sft"]["compute"]["trainer-0"] > 0
    assert lines[1]["profile"]["phases"]["rollout"]["compute"]["rollout-0"] > 0
    assert lines[0]["val_prompts"] == 6 and lines[0]["total_train_steps"] == 0
    assert lines[0]["seed_sft"]["examples"] == 16 and lines[0]["warmup"]["prompts"] == 6
    for record in lines[1:]:
        assert record["prompts"] == 12 and record["samples"] == 96
        assert record["selected"] > 0 and record["train_steps"] > 0
        assert record["rollout_weights_version"] == record["weights_version"] - 1  # sampled with the latest weights
        assert set(record["seconds"]) == {"rollout", "verify", "select", "train", "sync", "evaluate"}
        assert record["val_k"] == 8 and record["val_prompts"] == 6
        assert 0.0 <= record["val_greedy_accuracy"] <= 1.0 and 0.0 <= record["val_pass_at_k"] <= 1.0
    assert (run_dir.path / "config.yaml").is_file() and load_config(run_dir.path / "config.yaml") == cfg
    saved = json.loads((run_dir.path / "summary.json").read_text())
    assert saved == summary and saved["weights_version"] == 4
    assert {"greedy_accuracy", "pass_at_k"} <= saved["final"].keys() and saved["pre_evolved"]["prompts"] == 6
    names = ["best", "final", "iter_0001", "iter_0002", "pre_evolved"]
    assert sorted(p.name for p in run_dir.checkpoints.iterdir()) == names
    # `best` links to the first iteration with the highest validation greedy accuracy; iterations are resumable.
    best = max(lines[1:], key=lambda r: (r["val_greedy_accuracy"], -r["iteration"]))["iteration"]
    assert (run_dir.checkpoints / "best").resolve() == (run_dir.checkpoints / f"iter_{best:04d}").resolve()
    assert saved["best_checkpoint"]["name"] == f"iter_{best:04d}"
    for name in ("iter_0001", "iter_0002"):
        assert (run_dir.checkpoints / name / "driver_state.json").is_file()
        assert (run_dir.checkpoints / name / "trainer_state" / "state").is_dir()  # DeepSpeed: optimizer partitions
    assert json.loads((run_dir.path / "data_report.json").read_text())["labeled"]["loaded"] == 24
    # Continuous mode: one optimizer and schedule across iterations; both ranks hold identical weights.
    assert lines[2]["optimizer_steps_in_stage"] == lines[1]["train_steps"] + lines[2]["train_steps"]
    checksums = [trainer_checksum(rank) for rank in loop.trainers.ranks]
    assert checksums[0] == checksums[1]
    # The figures also went to TensorBoard and to Ray's Prometheus endpoint.
    events = EventAccumulator(str(run_dir.path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("val_greedy_accuracy")] == [0, 1, 2]
    assert [e.value for e in events.Scalars("weights_version")] == [2, 3, 4]
    scraped = scrape_ray_metrics("ray_mstar_weights_version", 'run="loop"', "4.0")
    assert scraped["ray_mstar_iteration"] == 2.0
    assert scraped["ray_mstar_val_greedy_accuracy"] == pytest.approx(lines[2]["val_greedy_accuracy"])
    assert scraped['ray_mstar_phase_seconds{phase="rollout"}'] == pytest.approx(lines[2]["seconds"]["rollout"])
    assert scraped['ray_mstar_phase_tokens_per_second{phase="rollout"}'] > 0


def scrape_ray_metrics(name: str, label: str, value: str, timeout_s: float = 120.0) -> dict[str, float]:
    """Poll the node's Prometheus endpoint until `name` with `label` reads `value`; return the run's mstar_*
    samples keyed by name plus their phase label (Ray reports custom metrics every few seconds)."""
    port = ray.nodes()[0]["MetricsExportPort"]
    deadline = time.monotonic() + timeout_s
    while True:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        samples = {}
        for line in text.splitlines():
            if line.startswith("ray_mstar_") and label in line:
                metric, labels = line.split("{", 1)[0], line.split("{", 1)[1].rsplit("}", 1)[0]
                phase = re.search(r'phase="(\w+)"', labels)
                samples[metric + (f'{{phase="{phase.group(1)}"}}' if phase else "")] = float(line.rsplit(" ", 1)[1])
        if samples.get(name) == float(value):
            return samples
        assert time.monotonic() < deadline, f"{name} never read {value}; scraped: {samples}"
        time.sleep(1)


def test_rest_em_with_two_rollout_workers(ray_cluster, tiny_data, tiny_model, tmp_path) -> None:
    cfg = _config(
        tiny_data,
        tiny_model,
        tmp_path,
        "loop.mode=rest_em",
        "loop.selection=random_k",
        "loop.top_k=2",
        "loop.eval_every=0",
        "checkpoint.every=0",
        "resources.rollout_workers=2",
        "resources.cpus_per_rollout_worker=0.5",
    )
    connect_ray(cfg)
    loop = MStarRun(cfg, RunDir.create(cfg), load_datasets(cfg))
    loop.fit()
    lines = loop.run_dir.read_metrics()
    for record in lines[1:]:
        assert record["prompts"] == 12 and record["samples"] == 96  # 6 prompts from each worker, merged
        assert 0 < record["selected"] <= 2 * 12
        # ReST-EM: a fresh optimizer (and base weights) every iteration, so steps never accumulate.
        assert record["optimizer_steps_in_stage"] == record["train_steps"] > 0
    trainer = ray.get(loop.trainers.export_weights_ref())
    for worker in loop.rollout.workers:
        rollout = engine_weights(worker)
        assert all(torch.equal(rollout[k], trainer[k]) for k in trainer)
        assert ray.get(worker.weights_version.remote()) == 3
    assert sorted(p.name for p in loop.run_dir.checkpoints.iterdir()) == ["final", "pre_evolved"]


def test_lora_policy_syncs_merged_weights(ray_cluster, tiny_data, tiny_model, tmp_path) -> None:
    cfg = _config(
        tiny_data,
        tiny_model,
        tmp_path,
        "resources.trainer_ranks=1",
        "resources.cpus_per_trainer=1",
        "train.lora.enabled=true",
        "train.lora.r=4",
        "train.freeze_vision=true",
        "train.gradient_checkpointing=true",
        "seed_sft.epochs=4",
        "loop.iterations=1",
        "loop.eval_test=false",
        "rollout.samples_per_prompt=4",
        "rollout.max_new_tokens=40",
    )
    connect_ray(cfg)
    loop = MStarRun(cfg, RunDir.create(cfg), load_datasets(cfg))
    loop.fit()
    # The engines hold the trainer's merged weights under the model's own names: no adapter tensors.
    trainer = ray.get(loop.trainers.export_weights_ref())
    worker = loop.rollout.workers[0]
    rollout = engine_weights(worker)
    assert rollout.keys() == trainer.keys() and not [k for k in trainer if "lora" in k]
    assert all(torch.equal(rollout[k], trainer[k]) for k in trainer)
    assert ray.get(worker.weights_version.remote()) == loop.weights.version >= 2  # after seed SFT (+ the iteration)
    # Only the adapted language-model projections changed; the final checkpoint is a plain model.
    start = AutoModelForImageTextToText.from_pretrained(tiny_model).state_dict()
    final = AutoModelForImageTextToText.from_pretrained(loop.run_dir.checkpoints / "final").state_dict()
    changed = {k for k in start if not torch.equal(start[k], final[k])}
    adapted = tuple(f"{m}.weight" for m in cfg.train.lora.target_modules)
    assert changed and all(".language_model." in k and k.endswith(adapted) for k in changed)
