"""The recipes in configs/recipes/: each validates, fits its GPUs, and carries the paper's hyper-parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from mstar_ray.config import ConfigError, SelectionRule, TemperatureCriterion, TrainingMode
from mstar_ray.config.io import load_config, read_tree
from mstar_ray.config.resources import check_fits, required_resources

RECIPES = Path(__file__).parents[2] / "configs" / "recipes"
RUNS = sorted(p for p in RECIPES.glob("*.yaml") if p.stem not in ("paper", "layout_1node", "layout_2nodes"))


def test_every_model_has_a_one_and_a_two_node_recipe() -> None:
    names = {p.stem for p in RUNS}
    for model in ("qwen2_5_vl_3b", "qwen2_5_vl_7b", "internvl3_2b", "minicpm_v2_5"):
        assert {f"{model}_1node", f"{model}_2nodes"} <= names
    assert len(RUNS) == 8


@pytest.mark.parametrize("recipe", RUNS, ids=lambda p: p.stem)
def test_recipe_has_the_paper_settings_and_fits_its_nodes(recipe: Path) -> None:
    cfg = load_config(recipe)
    nodes = 2 if recipe.stem.endswith("2nodes") else 1
    # The paper's recipe (docs/recipe.md).
    assert cfg.loop.mode == TrainingMode.CONTINUOUS and cfg.loop.interval == 0.25 and cfg.loop.iterations == 14
    assert cfg.loop.selection == SelectionRule.PRM_TOP_K and cfg.loop.top_k == 2
    assert cfg.rollout.samples_per_prompt == 16 and cfg.rollout.temperature == 1.0 and cfg.train.lr == 1e-6
    assert cfg.temperature.auto and cfg.temperature.every == 2
    assert cfg.temperature.criterion == TemperatureCriterion.REWARD_PASS_AT_2
    assert cfg.temperature.grid[0] == 0.3 and cfg.temperature.grid[-1] == 1.6 and len(cfg.temperature.grid) == 14
    assert cfg.warmup.enabled and cfg.prm.enabled and cfg.model.dtype == "bfloat16"
    assert set(cfg.eval.benchmarks) == {"mathvista", "m3cot", "mmstar", "mmbench", "ai2d"}
    r, t = cfg.resources, cfg.train
    assert t.micro_batch_size * t.grad_accum_steps * r.trainer_ranks == 128  # the paper's global batch
    # Exactly the nodes' GPUs, and a real check: one GPU fewer does not fit.
    need = required_resources(cfg, with_trainers=True)
    assert need["GPU"] == 8 * nodes
    check_fits(cfg, {"CPU": 96.0 * nodes, "GPU": 8.0 * nodes})
    with pytest.raises(ConfigError, match="GPU"):
        check_fits(cfg, {"CPU": 96.0 * nodes, "GPU": 8.0 * nodes - 1})
    assert cfg.model.trust_remote_code == recipe.stem.startswith("minicpm")


def test_base_files_merge_in_order_and_refuse_cycles(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("train:\n  lr: 1.0e-3\n  micro_batch_size: 2\nloop:\n  iterations: 3\n")
    (tmp_path / "b.yaml").write_text("train:\n  lr: 2.0e-3\n")
    (tmp_path / "c.yaml").write_text("base: [a.yaml, b.yaml]\nloop:\n  iterations: 5\n")
    assert read_tree(tmp_path / "c.yaml") == {"train": {"lr": 2e-3, "micro_batch_size": 2}, "loop": {"iterations": 5}}
    (tmp_path / "x.yaml").write_text("base: y.yaml\n")
    (tmp_path / "y.yaml").write_text("base: x.yaml\n")
    with pytest.raises(ConfigError, match="include each other"):
        read_tree(tmp_path / "x.yaml")
    (tmp_path / "z.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match="base file not found"):
        read_tree(tmp_path / "z.yaml")
