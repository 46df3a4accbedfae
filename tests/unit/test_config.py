"""Config loading and validation: errors name the key, before any Ray resource is taken."""

from __future__ import annotations

from pathlib import Path

import pytest

from mstar_ray.config import (
    ConfigError,
    MStarConfig,
    SelectionRule,
    TrainingMode,
)
from mstar_ray.config.io import config_to_yaml, load_config
from mstar_ray.config.resources import check_fits, check_prm_training_fits, required_resources

BASE = ["model.path=/m", "data.labeled=l.json", "data.validation=v.json", "data.test=t.json"]


def test_overrides_set_typed_values() -> None:
    cfg = load_config(
        None, BASE + ["loop.mode=rest_em", "loop.selection=all_correct", "train.lr=3e-4", "loop.iterations=7"]
    )
    assert cfg.loop.mode is TrainingMode.REST_EM
    assert cfg.loop.selection is SelectionRule.ALL_CORRECT
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.loop.iterations == 7


def test_yaml_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: {path: /a}\ndata: {labeled: l, validation: v, test: t}\nrollout: {samples_per_prompt: 4}\n")
    cfg = load_config(path, ["rollout.samples_per_prompt=6"])
    assert cfg.model.path == "/a" and cfg.rollout.samples_per_prompt == 6


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("loop.itertions=3", "loop.itertions"),
        ("trainer.lr=1", "trainer"),
        ("train.lr=fast", "train.lr"),
        ("loop.iterations=2.5", "loop.iterations"),
        ("loop.mode=ppo", "loop.mode"),
        ("rollout.temperature=-1", "rollout.temperature"),
        ("loop.interval=1.5", "loop.interval"),
        ("model.dtype=float64", "model.dtype"),
        ("resources.trainer_ranks=0", "resources.trainer_ranks"),
    ],
)
def test_bad_values_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, BASE + [override])


def test_missing_required_section_is_named() -> None:
    with pytest.raises(ConfigError, match=r"model"):
        load_config(None, ["data.labeled=l", "data.validation=v", "data.test=t"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loop.top_k=20", "rollout.samples_per_prompt=16"], r"loop\.top_k .* rollout\.samples_per_prompt"),
        (["seed_sft.enabled=true"], r"seed_sft\.enabled .* data\.seed_cot"),
        (["data.test=", "loop.eval_test=true"], r"loop\.eval_test .* data\.test"),
        (["ray.num_cpus=2", "resources.trainer_ranks=3"], r"resources: the run needs 4 CPU"),
        (["ray.address=auto", "ray.num_cpus=2"], r"ray\.num_cpus"),
        (["loop.selection=prm_top_k"], r"loop\.selection needs a process reward model: set prm\.enabled=true"),
        (["temperature.auto=true"], r"temperature\.auto .* needs a process reward model"),
        (["prm.enabled=true", "loop.mixin_unlabeled=true"], r"loop\.mixin_unlabeled .* data\.unlabeled"),
        (["prm.enabled=true", "temperature.auto=true", "temperature.grid=[]"], r"temperature\.grid is empty"),
        (["temperature.grid=[0.0, 1.0]"], r"temperature\.grid: temperatures must be above 0"),
        (
            ["ray.num_cpus=2", "prm.enabled=true"],
            r"needs 3 CPU .*larger of prm_workers=1 x cpus_per_prm_worker and prm\.train\.trainer_ranks=1",
        ),
        (["rollout.backend=vllm"], r"rollout\.vllm\.kv_cache_gib must be set for vLLM on the CPU"),
        (
            ["rollout.backend=vllm", "rollout.vllm.kv_cache_gib=1", "rollout.vllm.sleep_while_training=true"],
            r"rollout\.vllm\.sleep_while_training needs GPUs",
        ),
        (
            [
                "rollout.backend=vllm",
                "rollout.vllm.tensor_parallel_size=2",
                "resources.gpus_per_rollout_worker=1",
                "resources.gpus_per_trainer=1",
            ],
            r"tensor_parallel_size=2 needs resources\.gpus_per_rollout_worker=2",
        ),
        (
            ["rollout.backend=vllm", "rollout.vllm.kv_cache_gib=1", "rollout.vllm.max_model_len=512"],
            r"rollout\.max_new_tokens \(512\) leaves no room .* rollout\.vllm\.max_model_len \(512\)",
        ),
        (["rollout.backend=sglang"], r"rollout\.backend: Input should be 'transformers' or 'vllm'"),
        (["sync.bucket_mb=0"], r"sync\.bucket_mb: Input should be greater than 0"),
    ],
)
def test_inconsistent_values_rejected(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, BASE + overrides)


def test_check_fits_against_cluster_resources() -> None:
    gpus = ["resources.trainer_ranks=2", "resources.gpus_per_trainer=1", "resources.gpus_per_rollout_worker=1"]
    cfg = load_config(None, BASE + gpus)
    check_fits(cfg, {"CPU": 8, "GPU": 3})
    with pytest.raises(ConfigError, match=r"needs 3 GPU .* has 2"):
        check_fits(cfg, {"CPU": 8, "GPU": 2})


def test_trainers_and_rollout_engines_on_different_devices_cannot_sync() -> None:
    cfg = load_config(None, BASE + ["resources.gpus_per_trainer=1"])  # rollout stays on the CPU
    with pytest.raises(ConfigError, match=r"must both be on GPUs or both on the CPU"):
        check_fits(cfg, {"CPU": 8, "GPU": 8})
    check_fits(cfg, {"CPU": 8, "GPU": 8}, with_trainers=False)  # `mstar eval` starts no trainers


def test_prm_actors_count_at_their_peak() -> None:
    # PRM trainer ranks (training inside `mstar run`) are gone before the PRM scorers start: the larger counts.
    prm = ["prm.enabled=true", "resources.cpus_per_prm_worker=2", "prm.train.trainer_ranks=3"]
    assert required_resources(load_config(None, BASE + prm))["CPU"] == 1 + 1 + 3
    assert required_resources(load_config(None, BASE + prm + ["prm.path=/p"]))["CPU"] == 1 + 1 + 2
    assert required_resources(load_config(None, BASE + prm), with_trainers=False)["CPU"] == 1 + 2
    assert required_resources(load_config(None, BASE))["CPU"] == 2


def test_prm_training_alone_counts_only_its_ranks() -> None:
    cfg = load_config(None, BASE + ["prm.train.trainer_ranks=2", "resources.gpus_per_trainer=1"])
    check_prm_training_fits(cfg, {"CPU": 2, "GPU": 2})
    with pytest.raises(ConfigError, match=r"prm\.train\.trainer_ranks=2 x resources\.gpus_per_trainer=1 needs 2 GPU"):
        check_prm_training_fits(cfg, {"CPU": 8, "GPU": 1})


def test_automatic_temperature_by_pass_at_k_needs_no_prm() -> None:
    cfg = load_config(None, BASE + ["temperature.auto=true", "temperature.criterion=pass_at_k"])
    assert cfg.temperature.grid[0] == 0.3 and cfg.temperature.grid[-1] == 1.6 and len(cfg.temperature.grid) == 14


def test_malformed_override_and_top_level() -> None:
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(None, BASE + ["loop.iterations"])
    with pytest.raises(ConfigError, match="not a section"):
        load_config(None, BASE + ["loop=3", "loop.iterations=2"])


def test_resolved_yaml_round_trips(tmp_path: Path) -> None:
    cfg = load_config(None, BASE + ["loop.mode=iterative_rft"])
    path = tmp_path / "resolved.yaml"
    path.write_text(config_to_yaml(cfg))
    assert load_config(path) == cfg


def test_every_field_is_documented() -> None:
    def walk(model: type) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            sub = field.annotation
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                missing += [f"{name}.{m}" for m in walk(sub)]
            elif not field.description:
                missing.append(name)
        return missing

    assert walk(MStarConfig) == []


def test_vllm_backend_without_vllm_installed_fails_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"rollout\.backend=vllm but vllm is not installed"):
        load_config(None, BASE + ["rollout.backend=vllm", "rollout.vllm.kv_cache_gib=1"])


def test_the_configuration_reference_is_generated_from_the_schema() -> None:
    from mstar_ray.config.reference import reference

    page = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert page == reference(), "docs/configuration.md is stale: run `python -m mstar_ray.config.reference`"
    assert "| `checkpoint.best_metric` |" in page and "| `rollout.vllm.kv_cache_gib` |" in page


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["checkpoint.best_metric=val_greedy_acc"], "checkpoint.best_metric: unknown figure 'val_greedy_acc'"),
        (["checkpoint.best_metric=val_reward_pass_at_2"], "val_reward_pass_at_2 needs a process reward model"),
        (["loop.eval_every=0"], r"iterations \[1, 2, 3, 4\] are checkpointed .* \(loop.eval_every=0\)"),
        (["loop.eval_every=2", "checkpoint.every=3"], r"iterations \[3\] are checkpointed \(checkpoint.every=3\)"),
    ],
)
def test_a_best_checkpoint_that_could_never_be_chosen_is_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, BASE + overrides)


def test_best_checkpoint_settings_that_line_up_are_accepted() -> None:
    load_config(None, BASE + ["loop.eval_every=2", "checkpoint.every=2", "loop.iterations=5"])
    load_config(None, BASE + ["loop.eval_every=2", "checkpoint.every=3", "loop.iterations=3"])  # the last is validated
    load_config(None, BASE + ["loop.eval_every=0", "checkpoint.best_metric=null"])
    load_config(None, BASE + ["loop.eval_every=0", "checkpoint.every=0"])


def test_every_best_metric_is_a_validation_figure_of_the_record() -> None:
    from mstar_ray.config import BEST_METRICS
    from mstar_ray.eval.validation import EvalResult

    keys = EvalResult(10, 0.5, 0.8, 8, 0.4, 1.0, 0.6, 0.7).to_dict("val_")
    assert set(BEST_METRICS) <= set(keys)


def test_overrides_are_taken_wherever_they_stand_on_the_command_line() -> None:
    from mstar_ray.cli import parse_args

    args = parse_args(["eval", "--config", "c.yaml", "model.path=X", "--out", "Y", "rollout.backend=transformers"])
    assert args.out == "Y" and args.overrides == ["model.path=X", "rollout.backend=transformers"]
    args = parse_args(["run", "--config", "c.yaml", "a.b=1", "--resume", "r", "a.b=2"])
    assert args.resume == "r" and args.overrides == ["a.b=1", "a.b=2"]  # in order: the later one wins
    with pytest.raises(SystemExit):
        parse_args(["eval", "--config", "c.yaml", "--bogus"])
    with pytest.raises(SystemExit):
        parse_args(["report", "run_dir", "a.b=1"])  # a command without overrides


def test_the_config_package_exports_every_public_name_of_its_schema() -> None:
    import mstar_ray.config as config
    from mstar_ray.config import base, schema

    for module in (base, schema):
        public = {
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
        }
        public |= {n for n in vars(module) if n.isupper()}
        assert public <= set(config.__all__), f"add {public - set(config.__all__)} to mstar_ray/config/__init__.py"
