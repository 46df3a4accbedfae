"""Same config, same seed, same run: two short M-STaR runs with seed SFT, PRM step labels and training, PRM top-k
selection, automatic temperature and checkpoints agree record by record and end with bit-identical weights, on
each rollout backend; another `run.seed` changes them. And a prompt's samples do not depend on how many workers
share the prompts or how they are batched."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
import torch

from mstar_ray.config import MStarConfig
from mstar_ray.config.io import load_config
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.groups.cluster import connect_ray
from mstar_ray.groups.rollout import RolloutGroup
from mstar_ray.loop.compare import compare_runs
from mstar_ray.loop.datasets import load_datasets
from mstar_ray.loop.driver import MStarRun
from mstar_ray.loop.run_dir import RunDir
from mstar_ray.toy.synthetic import TaskSpec, write_synthetic_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    spec = TaskSpec(seed_size=16, labeled_size=16, validation_size=4, test_size=4)
    return write_synthetic_dataset(tmp_path_factory.mktemp("run_data"), spec, seed=0)


def _config(data: dict[str, Path], model: Path, out: Path, name: str, *extra: str) -> MStarConfig:
    return load_config(
        None,
        [
            f"model.path={model}",
            f"data.seed_cot={data['seed']}",
            f"data.labeled={data['labeled']}",
            f"data.validation={data['validation']}",
            f"data.test={data['test']}",
            f"run.output_dir={out}",
            f"run.name={name}",
            "resources.torch_threads=1",
            "resources.cpus_per_rollout_worker=0.5",
            "resources.cpus_per_trainer=0.5",
            "resources.cpus_per_prm_worker=0.5",
            "rollout.samples_per_prompt=4",
            "rollout.max_new_tokens=80",
            "train.lr=1e-3",
            "train.micro_batch_size=4",
            "seed_sft.enabled=true",
            "seed_sft.epochs=30",
            "seed_sft.lr=2e-3",
            "prm.enabled=true",
            "prm.label.prompts=3",
            "prm.label.responses_per_prompt=2",
            "prm.label.completions_per_step=2",
            "prm.train.epochs=1",
            "prm.train.micro_batch_size=4",
            "loop.iterations=2",
            "loop.interval=0.25",
            "loop.selection=prm_top_k",
            "loop.top_k=1",
            "temperature.auto=true",
            "temperature.every=2",
            "temperature.grid=[0.6, 1.2]",
            "temperature.prompts=2",
            "checkpoint.every=1",
            *extra,
        ],
    )


def _run(cfg: MStarConfig, probe=None) -> Path:
    """One run from seed SFT to the final test evaluation; `probe(loop)` sees its live actors before they stop."""
    connect_ray(cfg)
    run_dir = RunDir.create(cfg)
    loop = MStarRun(cfg, run_dir, load_datasets(cfg))
    try:
        loop.fit()
        if probe is not None:
            probe(loop)
    finally:
        loop.shutdown()
    return run_dir.path


def _deterministic_kernels(actor: ray.actor.ActorHandle) -> bool:
    return ray.get(actor.__ray_call__.remote(lambda self: torch.are_deterministic_algorithms_enabled()))


def _assert_reproducible(configs: dict[str, MStarConfig], probe) -> None:
    """Run each config; `probe` checks every run's live actors; runs "a" and "b" must agree, "other_seed" not."""
    runs = {name: _run(cfg, probe) for name, cfg in configs.items()}
    difference, compared = compare_runs(runs["a"], runs["b"])
    assert difference is None, str(difference)
    assert [c.split(" ")[0] for c in compared] == [
        "metrics.jsonl", "prompts.jsonl", "prm_labels.jsonl", "test_responses_pre_evolved.jsonl",
        "test_responses_final.jsonl", "summary.json", "checkpoints/final", "prm",
    ]  # fmt: skip
    records = RunDir.open(runs["a"]).read_metrics()
    assert [r["iteration"] for r in records] == [0, 1, 1, 2]  # pre-evolution, the temperature search, 2 iterations
    assert all(r["train_steps"] > 0 for r in records[2:])  # the iterations selected and trained
    assert (runs["a"] / "checkpoints" / "iter_0002" / "driver_state.json").is_file()
    other = compare_runs(runs["a"], runs["other_seed"])[0]
    assert other is not None and other.file == "metrics.jsonl" and other.record == 0  # from seed SFT on
    for name in ("prompts.jsonl", "prm_labels.jsonl", "checkpoints/final/model.safetensors"):
        assert (runs["a"] / name).read_bytes() != (runs["other_seed"] / name).read_bytes()


def test_two_runs_of_one_seed_agree_on_the_transformers_backend(ray_cluster, run_data, tiny_model, tmp_path) -> None:
    extra = ["rollout.backend=transformers", "run.deterministic=true"]  # deterministic kernels in the loop as well
    configs = {
        "a": _config(run_data, tiny_model, tmp_path, "a", *extra),
        "b": _config(run_data, tiny_model, tmp_path, "b", *extra),
        "other_seed": _config(run_data, tiny_model, tmp_path, "other_seed", *extra, "run.seed=1"),
    }

    def probe(loop: MStarRun) -> None:
        actors = [*loop.rollout.workers, *loop.trainers.ranks, *loop.prm.workers]
        assert all(_deterministic_kernels(actor) for actor in actors)

    _assert_reproducible(configs, probe)


@pytest.mark.vllm
def test_two_runs_of_one_seed_agree_on_the_vllm_backend(ray_cluster, run_data, tiny_model, tmp_path) -> None:
    """Also the loop on vLLM: each iteration samples with the latest weights, trains and syncs them into vLLM."""
    extra = ["rollout.backend=vllm", "rollout.vllm.kv_cache_gib=0.25", "rollout.vllm.max_model_len=1024"]
    extra += ["rollout.vllm.enforce_eager=true"]  # no compile warm-up: about 25 s less per engine here
    configs = {
        "a": _config(run_data, tiny_model, tmp_path, "a", *extra),
        "b": _config(run_data, tiny_model, tmp_path, "b", *extra),
        "other_seed": _config(run_data, tiny_model, tmp_path, "other_seed", *extra, "run.seed=1"),
    }

    def probe(loop: MStarRun) -> None:
        iterations = [r for r in loop.run_dir.read_metrics() if "prompts" in r]
        for record in iterations:
            assert record["rollout_weights_version"] == record["weights_version"] - 1  # sampled with the latest
            assert record["sync_full"] and record["sync_bytes"] > 4_000_000
        assert loop.weights.version == 3 == loop.rollout.weights_versions()[0]  # seed SFT + 2 iterations
        assert not any(_deterministic_kernels(w) for w in loop.rollout.workers)  # run.deterministic is off

    _assert_reproducible(configs, probe)


def test_samples_are_the_same_on_one_or_two_rollout_workers(ray_cluster, tiny_data, tiny_model) -> None:
    texts = []
    for workers, per_call, deterministic in ((1, 256, False), (2, 8, True)):
        cfg = load_config(
            None,
            [
                f"model.path={tiny_model}",
                f"data.labeled={tiny_data['labeled']}",
                f"data.validation={tiny_data['validation']}",
                "loop.eval_test=false",
                "resources.torch_threads=1",
                "resources.cpus_per_rollout_worker=0.5",
                f"resources.rollout_workers={workers}",
                f"rollout.sequences_per_call={per_call}",
                f"run.deterministic={str(deterministic).lower()}",
            ],
        )
        connect_ray(cfg)
        group = RolloutGroup(cfg, str(tiny_model))
        try:
            assert all(_deterministic_kernels(w) == deterministic for w in group.workers)
            prompts = load_datasets(cfg).labeled[:9]
            rollouts = group.generate(prompts, SamplingParams(n=4, temperature=1.0, max_new_tokens=32, seed=11))
            texts.append([[s.text for s in g.samples] for g in rollouts])
        finally:
            group.shutdown()
    assert texts[0] == texts[1]  # deterministic kernels change nothing on the CPU either
    assert any(len(set(samples)) > 1 for samples in texts[0])  # sampled, not greedy
