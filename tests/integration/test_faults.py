"""Fault tolerance on a real local Ray cluster: actor processes are killed with SIGKILL while they work."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
import ray
import torch
from actor_probes import engine_weights, pid_of, trainer_checksum
from transformers import AutoProcessor

from mstar_ray.config.io import load_config
from mstar_ray.core.records import PromptRollouts, Sample, TrainExample
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.groups.base import ActorRestartLimit
from mstar_ray.groups.cluster import connect_ray
from mstar_ray.groups.prm import PRMGroup
from mstar_ray.loop.datasets import load_datasets
from mstar_ray.loop.driver import MStarRun
from mstar_ray.loop.record import TrainResult
from mstar_ray.loop.run_dir import RunDir
from mstar_ray.prm.model import ProcessRewardModel
from mstar_ray.sync.coordinator import SyncStats

pytestmark = pytest.mark.slow


def _config(data: dict[str, Path], model: Path, out: Path, *extra: str):
    return load_config(
        None,
        [
            f"model.path={model}",
            f"data.labeled={data['labeled']}",
            f"data.validation={data['validation']}",
            f"run.output_dir={out}",
            "run.name=faults",
            "loop.eval_test=false",
            "resources.torch_threads=1",
            "resources.cpus_per_rollout_worker=0.5",
            "resources.cpus_per_trainer=0.5",
            "resources.cpus_per_prm_worker=0.5",
            "rollout.samples_per_prompt=4",
            "rollout.max_new_tokens=48",
            "train.micro_batch_size=4",
            "loop.iterations=2",
            "loop.interval=0.25",
            "loop.selection=all_correct",
            "monitor.progress=false",
            *extra,
        ],
    )


def _start_run(cfg) -> MStarRun:
    connect_ray(cfg)
    return MStarRun(cfg, RunDir.create(cfg), load_datasets(cfg))


def kill_during(call, actor: ray.actor.ActorHandle, busy_cpu_s: float = 0.3):
    """Run `call()` in a thread and SIGKILL `actor`'s process once it has spent `busy_cpu_s` CPU seconds on the call
    (an observed event, so a fast machine kills it mid-call as a slow one does); returns call's result and the
    seconds the call took, or raises what the call raised."""
    pid, out = pid_of(actor), {}
    process = psutil.Process(pid)
    idle = sum(process.cpu_times()[:2])

    def target() -> None:
        start = time.perf_counter()
        try:
            out["result"] = call()
        except Exception as err:  # noqa: BLE001 - handed to the test's thread
            out["error"] = err
        out["seconds"] = time.perf_counter() - start

    thread = threading.Thread(target=target)
    thread.start()
    while sum(process.cpu_times()[:2]) - idle < busy_cpu_s:
        assert thread.is_alive(), "the call finished before the actor was busy enough to be killed mid-call"
        time.sleep(0.02)
    assert thread.is_alive(), "the call finished before the actor could be killed mid-call"
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=600)
    assert not thread.is_alive(), "the call did not return after the actor was killed"
    if "error" in out:
        raise out["error"]
    return out["result"], out["seconds"]


def train_and_sync(loop: MStarRun, examples: list[TrainExample], iteration: int) -> tuple[TrainResult, SyncStats]:
    """An iteration's train and sync phases as the driver runs them, recovery included."""
    train = loop.train_phase(examples, iteration)
    synced, train = loop.sync_phase(examples, iteration, train)
    return train, synced


def test_rollout_worker_killed_mid_generate_is_restarted_with_current_weights(
    ray_cluster, tiny_data, tiny_model, tmp_path
) -> None:
    cfg = _config(tiny_data, tiny_model, tmp_path, "resources.rollout_workers=2")
    loop = _start_run(cfg)
    loop.weights.sync()
    loop.weights.sync()  # weights version 2: a restarted worker must come back at 2, not at the checkpoint's 0
    prompts = loop.data.labeled * 8  # 192 prompts x 4 samples: long enough to be killed in the middle
    params = SamplingParams(4, 1.0, 1.0, 0, 48, seed=3)
    old = loop.rollout.workers[1]

    rollouts, _ = kill_during(lambda: loop.rollout.generate(prompts, params), old)

    assert loop.recoveries() == {"rollout-1": 1}  # the death was seen inside generate, and counted once
    assert loop.rollout.workers[1] != old
    # No prompt lost or counted twice: every prompt once, in order, with its K samples from the current weights.
    assert [g.prompt.id for g in rollouts] == [p.id for p in prompts]
    assert all(len(g.samples) == 4 and {s.weights_version for s in g.samples} == {2} for g in rollouts)
    assert loop.rollout.weights_versions() == [2, 2]
    trainer = ray.get(loop.trainers.export_weights_ref())
    restarted = engine_weights(loop.rollout.workers[1])
    assert all(torch.equal(restarted[k], trainer[k]) for k in trainer)
    # The re-sent half equals what the uninterrupted worker would have sampled (seeds follow the prompt).
    again = loop.rollout.generate(prompts, params)
    assert [[s.text for s in g.samples] for g in again] == [[s.text for s in g.samples] for g in rollouts]


def test_prm_actor_killed_mid_scoring_rescores_its_share(ray_cluster, tiny_data, tiny_model, tmp_path) -> None:
    prm_dir = tmp_path / "prm"
    prm = ProcessRewardModel.from_pretrained(tiny_model)
    prm.save(prm_dir, AutoProcessor.from_pretrained(tiny_model), prm.state_dict(), {"aggregation": "min"})
    cfg = _config(tiny_data, tiny_model, tmp_path, "prm.enabled=true", f"prm.path={prm_dir}", "resources.prm_workers=2")
    group = PRMGroup(cfg, str(prm_dir))
    prompts = load_datasets(cfg).labeled

    def text(i: int) -> str:  # responses of different lengths and steps, so each score belongs to one response
        return "The grid has red cells.\n\n" * (1 + i % 3) + f"So the answer is {i}.\n\n# Answer\n\n{i}"

    def rollouts() -> list[PromptRollouts]:
        return [PromptRollouts(p, [Sample(p.id, text(i), 20, True, 1) for i in range(40)]) for p in prompts]

    expected = rollouts()
    group.score(expected)
    interrupted = rollouts()
    old = group.workers[1]

    scored, _ = kill_during(lambda: group.score(interrupted), old)

    assert group.restarts == {"prm-1": 1} and group.workers[1] != old
    assert scored == len(prompts) * 40
    got = [s.step_scores for g in interrupted for s in g.samples]
    want = [s.step_scores for g in expected for s in g.samples]
    assert [len(x) for x in got] == [len(x) for x in want]
    assert [v for x in got for v in x] == pytest.approx([v for x in want for v in x], abs=1e-5)

    # Restarts are bounded: with fault.max_actor_restarts=1 used up, the next death stops the call by name.
    group.max_restarts = 1
    with pytest.raises(ActorRestartLimit, match="prm-1 died 2 times, more than fault.max_actor_restarts=1"):
        kill_during(lambda: group.score(rollouts()), group.workers[1])


def test_trainer_rank_death_rebuilds_the_group_from_the_last_checkpoint(
    ray_cluster, tiny_data, tiny_model, tmp_path
) -> None:
    seed = f"data.seed_cot={tiny_data['seed']}"
    loop = _start_run(
        _config(
            tiny_data,
            tiny_model,
            tmp_path,
            "resources.trainer_ranks=2",
            "loop.eval_every=0",
            seed,
            "checkpoint.best_metric=null",
        )
    )
    gold = [TrainExample(p, p.reference) for p in loop.data.seed_cot]
    loop.pre_evolve()  # ends with the resumable pre-evolved checkpoint
    loop.trainers.start_stage(loop.optim)
    loop.stage_started = True
    first, _ = train_and_sync(loop, gold, 1)
    loop.checkpoints.save_iteration(1, loop.trainers, loop.state(1), with_trainer_state=True)
    reference, _ = train_and_sync(loop, gold, 2)  # iteration 2 without a failure
    uninterrupted = ray.get(loop.trainers.export_weights_ref())
    old_ranks = list(loop.trainers.ranks)
    os.kill(pid_of(old_ranks[1]), signal.SIGKILL)

    again, synced = train_and_sync(loop, gold, 2)  # iteration 2 again, losing rank 1 on the way

    assert loop.recoveries() == {"trainer_rebuilds": 1}
    assert all(new != old for new, old in zip(loop.trainers.ranks, old_ranks, strict=True))
    # Rebuilt from iteration 1's checkpoint, weights and optimizer state alike, so iteration 2 comes out the same.
    assert again.steps_in_stage == reference.steps_in_stage == 2 * first.steps
    assert again.loss == pytest.approx(reference.loss, rel=1e-5)
    rebuilt = ray.get(loop.trainers.export_weights_ref())
    assert all(torch.allclose(rebuilt[k], uninterrupted[k], atol=1e-6) for k in rebuilt)
    assert synced.full and loop.rollout.weights_versions() == [synced.version]
    checksums = [trainer_checksum(rank) for rank in loop.trainers.ranks]
    assert checksums[0] == checksums[1]

    # No checkpoint of iteration 2 exists: rebuilding for iteration 3 would silently undo iteration 2, so it stops.
    os.kill(pid_of(loop.trainers.ranks[0]), signal.SIGKILL)
    with pytest.raises(RuntimeError, match="last checkpoint is of iteration 1 .* continue with `mstar run --resume"):
        train_and_sync(loop, gold, 3)


def test_rollout_worker_dead_during_training_is_restarted_at_the_sync(
    ray_cluster, tiny_data, tiny_model, tmp_path
) -> None:
    cfg = _config(tiny_data, tiny_model, tmp_path, "resources.rollout_workers=2", "sync.timeout_s=30")
    loop = _start_run(cfg)
    loop.weights.sync()
    old = loop.rollout.workers[0]
    os.kill(pid_of(old), signal.SIGKILL)

    start = time.perf_counter()
    _, stats = train_and_sync(loop, [], 1)  # engines asleep while training: the dead one is skipped
    seconds = time.perf_counter() - start

    assert loop.recoveries() == {"rollout-0": 1} and loop.rollout.workers[0] != old
    assert stats.version == 2 and stats.full  # a new group: every weight sent again
    assert loop.rollout.weights_versions() == [2, 2]
    trainer = ray.get(loop.trainers.export_weights_ref())
    for worker in loop.rollout.workers:
        weights = engine_weights(worker)
        assert all(torch.equal(weights[k], trainer[k]) for k in trainer)
    print(f"sync with a dead engine recovered in {seconds:.1f} s")
