"""The actor groups the driver talks to: rollout workers, trainer ranks and PRM actors.

Each helper starts its actors, spreads work over them, and waits for the results, so the driver reads as plain
calls. Rollout and PRM actors that die are restarted in their own bundle and their unfinished share of the work is
sent again; trainer ranks are rebuilt by the driver from a checkpoint. Actor handles stay reachable for tests.
"""

from __future__ import annotations

import gc
import logging
import time
import weakref
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import ray

from actors.prm_worker import PRMWorker
from actors.rollout_worker import RolloutWorker
from actors.trainer import TrainerRank
from mstar_ray.config import MStarConfig
from mstar_ray.placement import Placement, actor_options
from mstar_ray.prm.model import StepLabeledExample
from mstar_ray.records import Prompt, PromptRollouts, Sample, TrainExample
from mstar_ray.rollout.engine import EngineSpec
from mstar_ray.rollout.sampling import SamplingParams
from mstar_ray.training.sft import DistributedSpec, OptimSpec, PolicyOptions, TrainStats, shard_examples

log = logging.getLogger("mstar")


class ActorRestartLimit(RuntimeError):
    """An actor died more often than fault.max_actor_restarts allows."""


def start_named(create: Callable[[], ray.actor.ActorHandle], timeout_s: float = 60.0) -> ray.actor.ActorHandle:
    """Create a named actor, waiting while a predecessor still holds the name: a dead one until Ray frees it, an
    unreferenced one (say, of an earlier run in this process, kept by a reference cycle) until it is collected."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return create()
        except ValueError:  # "The name ... is already taken"
            if time.monotonic() > deadline:
                raise
            gc.collect()
            time.sleep(0.5)


def get_all(refs: Sequence[ray.ObjectRef]) -> list:
    """Every result, raising at the first failure instead of waiting behind calls blocked on a dead peer."""
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        ray.get(done[0])
    return ray.get(list(refs))


def dead_actors(handles: Sequence[ray.actor.ActorHandle], timeout_s: float = 10.0) -> list[int]:
    """Indices of the actors that are dead; one still busy with a call counts as alive."""
    pings = [h.__ray_ready__.remote() for h in handles]
    ray.wait(pings, num_returns=len(pings), timeout=timeout_s)
    dead = []
    for i, ping in enumerate(pings):
        try:
            ray.get(ping, timeout=0)
        except ray.exceptions.RayActorError:
            dead.append(i)
        except ray.exceptions.GetTimeoutError:
            pass
    return dead


def _split_evenly(items: Sequence, parts: int) -> list[list]:
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return out


class RestartingGroup(ABC):
    """Workers that are restarted, by name and in their own bundle, when they die while working."""

    role = ""

    def __init__(self, cfg: MStarConfig, placement: Placement | None, names: list[str]) -> None:
        self.max_restarts, self.ready_timeout_s = cfg.fault.max_actor_restarts, cfg.fault.restart_timeout_s
        self.placement, self.names = placement, names
        self.restarts: Counter[str] = Counter()
        self.workers = [start_named(lambda i=i: self._start(i)) for i in range(len(names))]

    @abstractmethod
    def _start(self, index: int) -> ray.actor.ActorHandle:
        """Create worker `index` (named `names[index]`, in its bundle)."""

    def shutdown(self) -> None:
        """Stop the workers and free their resources."""
        for worker in self.workers:
            ray.kill(worker)

    def restart(self, index: int, err: Exception) -> None:
        """Replace dead worker `index` with a new actor of the same name (its name frees once Ray marks it dead)."""
        name = self.names[index]
        self.restarts[name] += 1
        if self.restarts[name] > self.max_restarts:
            raise ActorRestartLimit(
                f"{name} died {self.restarts[name]} times, more than fault.max_actor_restarts={self.max_restarts}"
            ) from err
        log.warning("%s died (%s); restarting it (restart %d)", name, type(err).__name__, self.restarts[name])
        ray.kill(self.workers[index], no_restart=True)
        self.workers[index] = start_named(lambda: self._start(index))
        ready, _ = ray.wait([self.workers[index].__ray_ready__.remote()], timeout=self.ready_timeout_s)
        if not ready:
            raise ActorRestartLimit(
                f"the restarted {name} was not up within fault.restart_timeout_s={self.ready_timeout_s:g}s "
                "(no room left for its bundle?)"
            ) from err

    def _map(self, method: str, shards: Sequence[Sequence], *args, on_restart: Callable[[], None] | None = None):
        """Call `method(shard, *args)` on worker i for every non-empty shard i and return the results in shard
        order; a worker that dies is restarted (then `on_restart` runs) and its shard is sent again."""
        results: dict[int, list] = {}
        pending = [i for i, shard in enumerate(shards) if len(shard)]
        while pending:
            refs = {i: getattr(self.workers[i], method).remote(shards[i], *(a[i] for a in args)) for i in pending}
            failed: list[tuple[int, Exception]] = []
            for i, ref in refs.items():
                try:
                    results[i] = ray.get(ref)
                except ray.exceptions.RayActorError as err:
                    failed.append((i, err))
            for i, err in failed:
                self.restart(i, err)
                log.warning("re-sending %d unfinished items to the restarted %s", len(shards[i]), self.names[i])
            if failed and on_restart is not None:
                on_restart()
            pending = [i for i, _ in failed]
        return [row for i in sorted(results) for row in results[i]]


class RolloutGroup(RestartingGroup):
    """Rollout workers `rollout-0..N-1`; prompts are split evenly over them.

    A restarted worker loads model_path; `set_after_restart` tells it how to catch up with the current weights.
    """

    role = "rollout"

    def __init__(self, cfg: MStarConfig, model_path: str, placement: Placement | None = None) -> None:
        r = cfg.resources
        self.spec = EngineSpec(
            cfg.rollout.backend,
            model_path,
            cfg.model.dtype,
            r.gpus_per_rollout_worker > 0,
            cfg.rollout.sequences_per_call,
            cfg.rollout.vllm,
            cfg.run.seed,
            cfg.model.trust_remote_code,
        )
        self.resources = r
        self._after_restart: weakref.WeakMethod | None = None
        super().__init__(cfg, placement, [f"rollout-{i}" for i in range(r.rollout_workers)])

    def _start(self, index: int) -> ray.actor.ActorHandle:
        r = self.resources
        options = actor_options(self.placement, self.role, index, r.cpus_per_rollout_worker, r.gpus_per_rollout_worker)
        name = self.names[index]
        return RolloutWorker.options(name=name, **options).remote(name, self.spec, r.torch_threads, options["num_cpus"])

    def set_after_restart(self, method: Callable[[], None]) -> None:
        """The bound method that brings restarted workers to the current weights before their work is re-sent
        (held weakly: the driver owns this group, not the other way round)."""
        self._after_restart = weakref.WeakMethod(method)

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, prefixes: Sequence[str] | None = None
    ) -> list[PromptRollouts]:
        """Samples for every prompt (continuing its response prefix, when given), in the order given."""
        shards = _split_evenly(prompts, len(self.workers))
        prefix_shards = _split_evenly(prefixes, len(self.workers)) if prefixes is not None else [None] * len(shards)
        after = self._after_restart() if self._after_restart is not None else None
        return self._map("generate", shards, [params] * len(shards), prefix_shards, on_restart=after)

    @contextmanager
    def asleep(self) -> Iterator[None]:
        """Release the engines' accelerator memory for the block (when rollout.vllm.sleep_while_training)."""
        self._call_living("sleep")
        try:
            yield
        finally:
            self._call_living("wake_up")

    def _call_living(self, method: str) -> None:
        """Call `method` on every worker; a dead one is skipped (the next sync or generate restarts it)."""
        for name, ref in zip(self.names, [getattr(w, method).remote() for w in self.workers], strict=True):
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError:
                log.warning("%s is dead; skipped its %s", name, method)

    def weights_versions(self) -> list[int | None]:
        return ray.get([w.weights_version.remote() for w in self.workers])


def policy_options(cfg: MStarConfig) -> PolicyOptions:
    """How the trainer ranks load and adapt the policy."""
    t = cfg.train
    lora = t.lora if t.lora.enabled else None
    return PolicyOptions(cfg.model.dtype, t.freeze_vision, cfg.model.trust_remote_code, t.gradient_checkpointing, lora)


class TrainerGroup:
    """DeepSpeed ranks `trainer-0..N-1` forming one process group; rank 0 hosts the rendezvous.

    With `prm_meta` the ranks (`prm-trainer-0..`) train a process reward model from `model_path` instead.
    """

    def __init__(
        self, cfg: MStarConfig, model_path: str, prm_meta: dict | None = None, placement: Placement | None = None
    ) -> None:
        r = cfg.resources
        count, name = (r.trainer_ranks, "trainer") if prm_meta is None else (cfg.prm.train.trainer_ranks, "prm-trainer")
        role = "trainer" if prm_meta is None else "prm"  # PRM trainer ranks use the PRM actors' slots
        self.names = [f"{name}-{i}" for i in range(count)]
        self.ranks = [
            start_named(
                lambda i=i, rank_name=rank_name: TrainerRank.options(
                    name=rank_name, **actor_options(placement, role, i, r.cpus_per_trainer, r.gpus_per_trainer)
                ).remote(r.torch_threads, r.cpus_per_trainer)
            )
            for i, rank_name in enumerate(self.names)
        ]
        addr, port = ray.get(self.ranks[0].rendezvous_address.remote())
        specs = [DistributedSpec(i, count, addr, port, r.gpus_per_trainer > 0) for i in range(count)]
        if prm_meta is None:
            options = policy_options(cfg)
            setups = [
                rank.setup.remote(model_path, spec, options) for rank, spec in zip(self.ranks, specs, strict=True)
            ]
        else:
            options = PolicyOptions(cfg.model.dtype, cfg.prm.train.freeze_vision, cfg.model.trust_remote_code)
            setups = [
                rank.setup_prm.remote(model_path, spec, options, prm_meta)
                for rank, spec in zip(self.ranks, specs, strict=True)
            ]
        get_all(setups)

    def shutdown(self) -> None:
        """Stop the ranks and free their resources."""
        for rank in self.ranks:
            ray.kill(rank)

    def start_stage(self, optim: OptimSpec, reset_to_base: bool = False) -> None:
        """Fresh optimizer and schedule on every rank."""
        self.optim = optim
        get_all([rank.start_stage.remote(optim, reset_to_base) for rank in self.ranks])

    def snapshot_base(self) -> None:
        """Every rank remembers its current weights as the ReST-EM base."""
        get_all([rank.snapshot_base.remote() for rank in self.ranks])

    def train(self, examples: Sequence[TrainExample | StepLabeledExample], epochs: int, seed: int) -> list[TrainStats]:
        """Shard examples evenly over the ranks and train; one stats record per rank."""
        multiple = self.optim.micro_batch_size * self.optim.grad_accum_steps
        shards = shard_examples(examples, len(self.ranks), multiple, seed)
        return get_all([rank.train.remote(shard, epochs, seed) for rank, shard in zip(self.ranks, shards, strict=True)])

    def export_weights_ref(self) -> ray.ObjectRef:
        """An object reference to rank 0's full weights (every rank joins a ZeRO-3 gather, others return {})."""
        refs = [rank.export_weights.remote() for rank in self.ranks]
        ray.get(refs[1:])
        return refs[0]

    def save_pretrained(self, out_dir: str) -> None:
        """Rank 0 writes a Hugging Face checkpoint; all ranks take part in gathering."""
        get_all([rank.save_pretrained.remote(out_dir) for rank in self.ranks])

    def save_state(self, out_dir: str) -> None:
        """Every rank writes its part of the DeepSpeed state (optimizer partitions, schedule, RNG)."""
        get_all([rank.save_state.remote(out_dir) for rank in self.ranks])

    def load_state(self, in_dir: str) -> None:
        """Every rank restores what `save_state` wrote (after `start_stage` with the same settings)."""
        get_all([rank.load_state.remote(in_dir) for rank in self.ranks])


class PRMGroup(RestartingGroup):
    """PRM actors `prm-0..N-1`; responses to score are split evenly over them."""

    role = "prm"

    def __init__(self, cfg: MStarConfig, prm_path: str, placement: Placement | None = None) -> None:
        self.cfg, self.prm_path = cfg, prm_path
        super().__init__(cfg, placement, [f"prm-{i}" for i in range(cfg.resources.prm_workers)])

    def _start(self, index: int) -> ray.actor.ActorHandle:
        r = self.cfg.resources
        options = actor_options(self.placement, self.role, index, r.cpus_per_prm_worker, r.gpus_per_prm_worker)
        use_gpu, batch = r.gpus_per_prm_worker > 0, self.cfg.prm.batch_size
        return PRMWorker.options(name=self.names[index], **options).remote(
            self.prm_path,
            self.cfg.model.dtype,
            use_gpu,
            batch,
            r.torch_threads,
            r.cpus_per_prm_worker,
            self.cfg.model.trust_remote_code,
        )

    def score(self, rollouts: Sequence[PromptRollouts], only_correct: bool = False) -> int:
        """Set `step_scores` on every sample (or every verified-correct one); returns how many were scored."""
        targets: list[tuple[Prompt, Sample]] = [
            (group.prompt, s) for group in rollouts for s in group.samples if s.correct or not only_correct
        ]
        shards = _split_evenly([(prompt, s.text) for prompt, s in targets], len(self.workers))
        scores = self._map("score", shards)
        for (_, sample), step_scores in zip(targets, scores, strict=True):
            sample.step_scores = step_scores
        return len(targets)
