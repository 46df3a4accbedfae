"""`mstar run --resume`: a driver killed after iteration 2 continues exactly where its checkpoint left it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import torch
from safetensors.torch import load_file

from mstar_ray.config.io import config_to_yaml, load_config
from mstar_ray.loop.launch import run_mstar

pytestmark = pytest.mark.slow


def _overrides(data: dict[str, Path], model: Path, out: Path, name: str, *extra: str) -> list[str]:
    return [
        f"model.path={model}",
        f"data.seed_cot={data['seed']}",
        f"data.labeled={data['labeled']}",
        f"data.validation={data['validation']}",
        f"run.output_dir={out}",
        f"run.name={name}",
        "loop.eval_test=false",
        "resources.torch_threads=1",
        "resources.cpus_per_rollout_worker=0.5",
        "resources.cpus_per_trainer=0.5",
        "rollout.samples_per_prompt=4",
        "rollout.max_new_tokens=64",
        "train.lr=5e-4",
        "train.micro_batch_size=4",
        "seed_sft.enabled=true",
        "seed_sft.epochs=30",
        "seed_sft.lr=2e-3",
        "loop.interval=0.4",  # 10 of 24 prompts per iteration: iteration 3 crosses into a reshuffled epoch
        "loop.selection=all_correct",
        "checkpoint.keep_last=1",
        "monitor.progress=false",
        *extra,
    ]


def _journal(run_dir: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (run_dir / name).read_text().splitlines()]


@pytest.mark.parametrize(
    "mode, iterations",
    [("continuous", 4), ("iterative_rft", 3)],  # one optimizer for the loop / a fresh one each iteration
)
def test_run_killed_after_iteration_2_resumes_with_the_same_prompts_and_weights(
    ray_cluster, tiny_data, tiny_model, tmp_path, mode, iterations
) -> None:
    extra = [f"loop.mode={mode}", f"loop.iterations={iterations}"]
    whole = run_mstar(load_config(None, _overrides(tiny_data, tiny_model, tmp_path, "whole", *extra)))

    # The same run as a separate driver process on this cluster, SIGKILLed once iteration 2's checkpoint is out.
    stopped = tmp_path / "stopped"
    config = tmp_path / "stopped.yaml"
    gcs = ray.get_runtime_context().gcs_address
    config.write_text(config_to_yaml(load_config(None, _overrides(tiny_data, tiny_model, tmp_path, "stopped", *extra))))
    log = (tmp_path / "stopped.log").open("w")
    cmd = [sys.executable, "-m", "mstar_ray", "run", "--config", str(config), f"ray.address={gcs}"]
    driver = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    while not (stopped / "checkpoints" / "iter_0002" / "driver_state.json").exists():
        assert driver.poll() is None, (tmp_path / "stopped.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "iteration 2's checkpoint never appeared"
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert not (stopped / "summary.json").exists()

    overrides = ["monitor.tensorboard=false"]  # a resume may change settings; the run directory records them
    resumed = run_mstar(load_config(stopped / "config.yaml", overrides), resume=stopped, overrides=overrides)

    assert resumed["resumed_after"] in (2, 3)  # the kill lands after iteration 2's checkpoint, maybe after 3's
    assert _journal(stopped, "resumes.jsonl") == [{"after_iteration": resumed["resumed_after"], "overrides": overrides}]
    assert load_config(stopped / "config.yaml").monitor.tensorboard is False
    assert resumed["weights_version"] == whole["weights_version"] == 1 + iterations  # seed SFT, one per iteration
    whole_dir = tmp_path / "whole"
    assert _journal(stopped, "prompts.jsonl") == _journal(whole_dir, "prompts.jsonl")
    assert [r["iteration"] for r in _journal(stopped, "prompts.jsonl")] == list(range(1, iterations + 1))
    got, want = _journal(stopped, "metrics.jsonl"), _journal(whole_dir, "metrics.jsonl")
    assert [r["iteration"] for r in got] == [r["iteration"] for r in want] == list(range(iterations + 1))
    same = ("selected", "train_steps", "optimizer_steps_in_stage", "sample_accuracy", "rollout_weights_version")
    for a, b in zip(got[1:], want[1:], strict=True):  # same samples, same selection, same optimizer path
        assert [a.get(k) for k in same] == [b.get(k) for k in same]
        assert a.get("train_loss") == pytest.approx(b.get("train_loss"))
    assert sum(r["train_steps"] for r in got[1:]) > 0
    final_a = load_file(str(stopped / "checkpoints" / "final" / "model.safetensors"))
    final_b = load_file(str(whole_dir / "checkpoints" / "final" / "model.safetensors"))
    assert all(torch.allclose(final_a[k], final_b[k], atol=1e-5) for k in final_b)
    # keep_last=1 plus the best one; the pre-evolved and final policies stay.
    kept, best = {p.name for p in (stopped / "checkpoints").iterdir()}, resumed["best_checkpoint"]["name"]
    assert kept == {"best", "final", f"iter_{iterations:04d}", "pre_evolved", best}
    assert (stopped / "checkpoints" / "best").resolve().name == best


def test_resume_refuses_finished_and_unknown_runs(tmp_path, tiny_data, tiny_model) -> None:
    from mstar_ray.cli import main

    assert main(["run", "--resume", str(tmp_path / "nothing")]) == 2
    run_dir = tmp_path / "done"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(
        config_to_yaml(load_config(None, _overrides(tiny_data, tiny_model, tmp_path, "done")))
    )
    (run_dir / "summary.json").write_text("{}")
    with pytest.raises(ValueError, match="finished already"):
        run_mstar(load_config(run_dir / "config.yaml"), resume=run_dir)
