"""Driver pieces that need no cluster: the prompt cursor, the run directory, the learning-rate schedule."""

from __future__ import annotations

import pytest

from mstar_ray.config.io import load_config
from mstar_ray.core.records import Prompt
from mstar_ray.loop.datasets import PromptCursor
from mstar_ray.loop.run_dir import RunDir
from mstar_ray.training.sft import lr_multiplier

PROMPTS = [Prompt(f"p{i}", "q", ("/x.png",), "1") for i in range(10)]


def test_cursor_takes_interval_shares_and_reshuffles_each_epoch() -> None:
    cursor = PromptCursor(PROMPTS, interval=0.25, seed=7)
    batches = [cursor.next_interval() for _ in range(8)]
    assert [len(b) for b in batches] == [2] * 8  # round(0.25 * 10)
    first_epoch = [p.id for b in batches[:5] for p in b]
    assert sorted(first_epoch) == sorted(p.id for p in PROMPTS)  # each prompt once per epoch
    assert cursor.epoch == 1
    again = PromptCursor(PROMPTS, interval=0.25, seed=7)
    assert [[p.id for p in again.next_interval()] for _ in range(8)] == [[p.id for p in b] for b in batches]
    other = PromptCursor(PROMPTS, interval=0.25, seed=8)
    assert [p.id for _ in range(5) for p in other.next_interval()] != first_epoch  # the seed sets the order


def test_cursor_wraps_inside_one_interval() -> None:
    cursor = PromptCursor(PROMPTS, interval=0.3, seed=0)
    ids = [p.id for _ in range(4) for p in cursor.next_interval()]  # 4 x 3 = 12 prompts, 2 into epoch 1
    assert len(ids) == 12 and sorted(ids[:10]) == sorted(p.id for p in PROMPTS) and cursor.epoch == 1


def test_run_dir_checkpoints_are_atomic_and_pruned(tmp_path) -> None:
    cfg = load_config(
        None,
        ["model.path=/m", "data.labeled=l", "data.validation=v", "data.test=t", f"run.output_dir={tmp_path}"],
    )
    run = RunDir.create(cfg)
    assert (run.path / "config.yaml").is_file()
    for i in range(1, 5):
        staging = run.checkpoint_staging(f"iter_{i:04d}")
        (staging / "weights").write_text(str(i))
        assert not (run.checkpoints / f"iter_{i:04d}").exists()  # invisible until published
        run.publish_checkpoint(f"iter_{i:04d}", keep_last=2)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["iter_0003", "iter_0004"]
    run.append_metrics({"iteration": 1})
    run.append_metrics({"iteration": 2})
    assert [r["iteration"] for r in run.read_metrics()] == [1, 2]
    with pytest.raises(ValueError, match="run.name"):
        RunDir.create(cfg)


def test_lr_schedule_warms_up_decays_and_stays_flat() -> None:
    assert [round(lr_multiplier(s, 3, 0), 2) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lr_multiplier(0, 0, 10) == pytest.approx(1.0)
    assert lr_multiplier(5, 0, 10) == pytest.approx(0.55)
    assert lr_multiplier(10, 0, 10) == pytest.approx(0.1) and lr_multiplier(50, 0, 10) == pytest.approx(0.1)


def test_preflight_refuses_more_images_than_vllm_takes_before_ray() -> None:
    from mstar_ray.config import ConfigError
    from mstar_ray.loop.datasets import Datasets
    from mstar_ray.loop.preflight import preflight

    two = Prompt("m", "Which is larger?", ("/a.png", "/b.png"), "A")
    data = Datasets(labeled=[*PROMPTS, two], validation=PROMPTS, test=[], seed_cot=[], unlabeled=[], reports={})
    base = ["model.path=/m", "data.labeled=l", "data.validation=v", "loop.eval_test=false"]
    vllm = [*base, "rollout.backend=vllm", "rollout.vllm.kv_cache_gib=0.5"]
    with pytest.raises(ConfigError, match="a prompt has 2 images but rollout.vllm.max_images_per_prompt is 1"):
        preflight(load_config(None, vllm), data)
    preflight(load_config(None, [*vllm, "rollout.vllm.max_images_per_prompt=2"]), data)
    preflight(load_config(None, base), data)  # the transformers backend takes any number
