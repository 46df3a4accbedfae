"""The SFT trainer rank with real DeepSpeed on gloo (world size 1, in this process): modes and loss masking."""

from __future__ import annotations

import socket

import pytest
import torch

from mstar_ray.core.records import TrainExample
from mstar_ray.data.llava import load_prompts
from mstar_ray.models.encoding import IGNORE_INDEX, encode_example
from mstar_ray.training.sft import DistributedSpec, OptimSpec, SFTTrainer, shard_examples

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def trainer(tiny_model) -> SFTTrainer:
    return SFTTrainer(str(tiny_model), DistributedSpec(0, 1, "127.0.0.1", _free_port(), use_gpu=False))


@pytest.fixture(scope="module")
def examples(tiny_data) -> list[TrainExample]:
    prompts, _ = load_prompts(tiny_data["seed"])
    return [TrainExample(p, p.reference) for p in prompts]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_labels_cover_exactly_the_response(trainer: SFTTrainer, examples: list[TrainExample]) -> None:
    enc = encode_example(trainer.processor, examples[0])
    labels = enc["labels"][0]
    response_ids = labels[labels != IGNORE_INDEX]
    decoded = trainer.processor.tokenizer.decode(response_ids)
    assert decoded == examples[0].response + "<|im_end|>"
    assert (labels[: -len(response_ids)] == IGNORE_INDEX).all()


def test_continuous_rft_and_rest_em_semantics(trainer: SFTTrainer, examples: list[TrainExample]) -> None:
    # A small reduction bucket makes a stale hook from a previous engine overflow its bucket within a step.
    optim = OptimSpec(lr=1e-3, micro_batch_size=4, reduce_bucket_size=50_000)
    shard = shard_examples(examples, 1, 4, seed=0)[0]
    trainer.start_stage(optim)
    trainer.snapshot_base()
    base = trainer.export_weights()

    first = trainer.train(shard, epochs=2)
    second = trainer.train(shard, epochs=1)  # continuous: optimizer and schedule carry over
    assert first.optimizer_steps == 8 and second.optimizer_steps == 4 and trainer.steps_taken() == 12
    assert second.mean_loss < first.mean_loss
    trained = trainer.export_weights()
    assert not _same(base, trained)

    trainer.start_stage(optim)  # iterative RFT: fresh optimizer, latest weights
    assert trainer.steps_taken() == 0 and _same(trainer.export_weights(), trained)

    trainer.start_stage(optim, reset_to_base=True)  # ReST-EM: fresh optimizer, base weights
    assert trainer.steps_taken() == 0 and _same(trainer.export_weights(), base)

    for _ in range(3):  # rebuilt engines keep training: the old engines' gradient hooks are gone
        assert trainer.train(shard, epochs=1).optimizer_steps == 4
        trainer.start_stage(optim)


def test_shards_are_equal_and_whole_steps(examples: list[TrainExample]) -> None:
    shards = shard_examples(examples[:13], world_size=2, per_rank_multiple=4, seed=3)
    assert [len(s) for s in shards] == [8, 8]
    assert {e.prompt.id for s in shards for e in s} == {e.prompt.id for e in examples[:13]}
    assert shard_examples(examples[:3], 2, 4, seed=0) == shard_examples(examples[:3], 2, 4, seed=0)
    assert [len(s) for s in shard_examples(examples[:3], 2, 4, seed=0)] == [4, 4]
    assert shard_examples([], 2, 4, seed=0) == [[], []]
