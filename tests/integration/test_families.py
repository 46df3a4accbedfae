"""A short M-STaR run on every model family of the factory, on one real local Ray instance: rollout, PRM step
labels, PRM training and scoring, PRM top-k selection, DeepSpeed training, weight sync and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray
import torch
from actor_probes import engine_weights
from transformers import AutoModelForImageTextToText

from mstar_ray.config.io import load_config
from mstar_ray.groups.cluster import connect_ray
from mstar_ray.loop.datasets import load_datasets
from mstar_ray.loop.driver import MStarRun
from mstar_ray.loop.run_dir import RunDir
from mstar_ray.toy.factory import FAMILIES, build_tiny_model
from mstar_ray.toy.synthetic import TaskSpec, corpus_texts, write_synthetic_dataset

pytestmark = pytest.mark.slow


EASY_ANSWER, EASY_REFERENCE = "2", "Two.\n\n# Answer\n\n2"


@pytest.fixture(scope="module")
def family_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic images and questions with one answer for all, so that a few seed SFT steps teach a random
    model to answer right and the iteration has correct responses to score, select and train on."""
    spec = TaskSpec(seed_size=4, labeled_size=8, validation_size=4, test_size=4)
    paths = write_synthetic_dataset(tmp_path_factory.mktemp("family_data"), spec, seed=0)
    for split, path in paths.items():
        rows = json.loads(path.read_text())
        for row in rows:
            row["conversations"][1]["value"] = EASY_REFERENCE if split == "seed" else EASY_ANSWER
        path.write_text(json.dumps(rows))
    return paths


# Qwen2-VL is the tiny model of every other loop test (test_loop.py, test_prm_loop.py, test_resume.py, ...).
LOOP_FAMILIES = [f for f in FAMILIES if f != "qwen2_vl"]


def _config(data: dict[str, Path], model: Path, out: Path):
    """One rollout worker, one trainer rank, one PRM worker; everything as small as still runs each phase."""
    return load_config(
        None,
        [
            f"model.path={model}",
            f"data.seed_cot={data['seed']}",
            f"data.labeled={data['labeled']}",
            f"data.validation={data['validation']}",
            f"data.test={data['test']}",
            f"run.output_dir={out}",
            "run.name=family",
            "resources.torch_threads=1",
            "resources.cpus_per_rollout_worker=0.5",
            "resources.cpus_per_trainer=0.5",
            "resources.cpus_per_prm_worker=0.5",
            "rollout.samples_per_prompt=2",
            "rollout.temperature=0.5",
            "rollout.max_new_tokens=16",
            "train.lr=1e-3",
            "train.micro_batch_size=1",
            "seed_sft.enabled=true",  # so that the first sync carries trained weights
            "seed_sft.epochs=30",
            "seed_sft.lr=3e-3",
            "prm.enabled=true",
            "prm.label.prompts=2",
            "prm.label.responses_per_prompt=1",
            "prm.label.completions_per_step=1",
            "prm.train.epochs=1",
            "prm.train.micro_batch_size=2",
            "loop.iterations=1",
            "loop.interval=0.5",
            "loop.selection=prm_top_k",
            "loop.top_k=1",
            "loop.eval_every=0",  # the test split is evaluated before and after (with the PRM), validation is not
            "checkpoint.every=0",
            "monitor.ray_metrics=false",
            "monitor.tensorboard=false",
        ],
    )


@pytest.mark.parametrize("family", LOOP_FAMILIES)
def test_one_iteration_on_each_family(ray_cluster, family_data, family, tmp_path) -> None:
    model = build_tiny_model(family, corpus_texts(n=300), tmp_path / "model", seed=0)
    cfg = _config(family_data, model, tmp_path / "runs")
    connect_ray(cfg)
    loop = MStarRun(cfg, RunDir.create(cfg), load_datasets(cfg))
    try:
        summary = loop.fit()

        assert (loop.run_dir.path / "summary.json").is_file()
        records = loop.run_dir.read_metrics()
        assert [r["iteration"] for r in records] == [0, 1]
        assert records[0]["seed_sft"]["examples"] == 4 and records[0]["prm"]["labels"]["prompts"] == 2
        assert records[0]["prm"]["train"]["epoch_losses"]
        assert records[1]["prompts"] == 4 and records[1]["samples"] == 8
        assert {"rollout", "verify", "score", "select", "train", "sync"} <= set(records[1]["seconds"])
        assert records[1]["selected"] > 0 and records[1]["train_steps"] > 0  # PRM-ranked correct responses trained
        assert summary["weights_version"] == records[1]["weights_version"] == 2  # seed SFT, then the iteration
        for split in ("pre_evolved", "final"):
            assert summary[split]["prompts"] == 4 and summary[split]["reward_pass_at_2"] is not None

        # After the sync the rollout engine holds exactly the trainer's weights, which seed SFT moved.
        trainer = ray.get(loop.trainers.export_weights_ref())
        (worker,) = loop.rollout.workers
        rollout = engine_weights(worker)
        assert rollout.keys() == trainer.keys()
        assert [k for k in trainer if not torch.equal(rollout[k], trainer[k])] == []
        assert ray.get(worker.weights_version.remote()) == 2
        initial = AutoModelForImageTextToText.from_pretrained(model).state_dict()
        assert initial.keys() == trainer.keys() and [k for k in trainer if not torch.equal(trainer[k], initial[k])]
    finally:
        loop.shutdown()
