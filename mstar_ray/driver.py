"""The M-STaR driver: pre-evolution stages, then online iterations of rollout, verify, select, train, sync."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import ray

from mstar_ray import stages
from mstar_ray.config import MStarConfig, TrainingMode, check_fits
from mstar_ray.data.llava import load_prompts
from mstar_ray.evaluation import EvalResult, evaluate
from mstar_ray.groups import RolloutGroup, TrainerGroup
from mstar_ray.metrics import mark_correct, mean_response_tokens, pass_at_k, sample_accuracy
from mstar_ray.records import Prompt, PromptRollouts, TrainExample
from mstar_ray.rollout.sampling import SamplingParams
from mstar_ray.run_dir import RunDir
from mstar_ray.selection import select_training_examples

log = logging.getLogger("mstar")


@dataclass
class Datasets:
    """The prompt sets of a run."""

    labeled: list[Prompt]
    validation: list[Prompt]
    test: list[Prompt]
    seed_cot: list[Prompt]
    reports: dict  # split -> what was loaded and skipped, with reasons


def load_datasets(cfg: MStarConfig) -> Datasets:
    """Load every configured split, counting what was skipped and why."""
    d = cfg.data
    loaded, reports = {}, {}
    for split in ("labeled", "validation", "test", "seed_cot"):
        path = getattr(d, split)
        prompts, report = load_prompts(path, d.image_root, d.on_bad_row, d.check_images) if path else ([], None)
        if path and not prompts:
            raise ValueError(f"data.{split}: no usable rows in {path} (skipped: {dict(report.skipped)})")
        loaded[split], reports[split] = prompts, report.to_dict() if report else None
        if report and report.skipped:
            log.warning("data.%s: skipped %s", split, dict(report.skipped))
    if cfg.seed_sft.enabled and not any(p.reference for p in loaded["seed_cot"]):
        raise ValueError(f"data.seed_cot: no row of {d.seed_cot} has a '# Answer' chain of thought to train on")
    loaded["validation"] = loaded["validation"][: d.max_validation]
    return Datasets(**loaded, reports=reports)


class PromptCursor:
    """Walks the labeled prompts in shuffled order, one interval per iteration, reshuffling each epoch."""

    def __init__(self, prompts: Sequence[Prompt], interval: float, seed: int) -> None:
        self.prompts, self.seed = list(prompts), seed
        self.per_iteration = max(1, round(interval * len(prompts)))
        self.epoch, self.position = 0, 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[Prompt]:
        order = list(self.prompts)
        random.Random(self.seed * 100_003 + epoch).shuffle(order)
        return order

    def next_interval(self) -> list[Prompt]:
        """The next `interval` share of the prompts, continuing into a new epoch when needed."""
        batch: list[Prompt] = []
        while len(batch) < self.per_iteration:
            if self.position == len(self._order):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._shuffled(self.epoch)
            take = min(self.per_iteration - len(batch), len(self._order) - self.position)
            batch.extend(self._order[self.position : self.position + take])
            self.position += take
        return batch


class PhaseTimer:
    """Wall seconds of each named phase of an iteration."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = round(time.perf_counter() - start, 3)


def connect_ray(cfg: MStarConfig, with_trainers: bool = True) -> None:
    """Join the configured cluster or start Ray in this process, then check the actors fit."""
    if not ray.is_initialized():
        if cfg.ray.address:
            ray.init(address=cfg.ray.address)
        else:  # a single-node Ray inside this process: keep it on loopback
            ray.init(num_cpus=cfg.ray.num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1")
    check_fits(cfg, ray.cluster_resources(), with_trainers)


class MStarRun:
    """One run: the actor groups, the data, the run directory, and the loop over iterations."""

    def __init__(self, cfg: MStarConfig, run: RunDir, data: Datasets) -> None:
        self.cfg, self.run_dir, self.data = cfg, run, data
        run.write_json("data_report.json", data.reports)
        self.rollout = RolloutGroup(cfg, cfg.model.path)
        self.trainers = TrainerGroup(cfg, cfg.model.path)
        self.cursor = PromptCursor(data.labeled, cfg.loop.interval, cfg.run.seed)
        self.rng = random.Random(cfg.run.seed)
        self.weights_version = 0
        self.optim = stages.optim_spec(cfg, cfg.train.lr)

    def sampling(self, iteration: int) -> SamplingParams:
        """The rollout sampling settings of one iteration."""
        r = self.cfg.rollout
        seed = self.cfg.run.seed * 1_000_003 + iteration
        return SamplingParams(r.samples_per_prompt, r.temperature, r.top_p, r.top_k, r.max_new_tokens, seed)

    def run(self) -> dict:
        """Pre-evolve, evaluate, iterate, evaluate again; returns the summary written to summary.json."""
        start = time.perf_counter()
        self.pre_evolve()
        pre_test = self.evaluate_test("pre-evolved")
        if self.cfg.loop.mode == TrainingMode.CONTINUOUS:
            self.trainers.start_stage(self.optim)
        for iteration in range(1, self.cfg.loop.iterations + 1):
            self.iterate(iteration)
        final_test = self.evaluate_test("final")
        self.save_checkpoint("final")
        summary = {
            "mode": self.cfg.loop.mode.value,
            "iterations": self.cfg.loop.iterations,
            "weights_version": self.weights_version,
            "wall_seconds": round(time.perf_counter() - start, 1),
            "pre_evolved": pre_test.to_dict() if pre_test else None,
            "final": final_test.to_dict() if final_test else None,
        }
        self.run_dir.write_json("summary.json", summary)
        return summary

    def pre_evolve(self) -> None:
        """Seed SFT and/or warm-up, then sync and keep the result as the pre-evolved (base) model."""
        record: dict = {"iteration": 0}
        timer = PhaseTimer()
        if self.cfg.seed_sft.enabled:
            with timer("seed_sft"):
                record["seed_sft"] = stages.seed_sft(self.cfg, self.trainers, self.data.seed_cot)
                self.sync()
        if self.cfg.warmup.enabled:
            with timer("warmup"):
                record["warmup"] = stages.warmup(self.cfg, self.rollout, self.trainers, self.data.labeled)
                self.sync()
        self.trainers.snapshot_base()
        self.save_checkpoint("pre_evolved")
        record |= {"weights_version": self.weights_version, "seconds": timer.seconds}
        self.run_dir.append_metrics(record)

    def iterate(self, iteration: int) -> None:
        """One self-evolving iteration, each phase timed."""
        timer, params = PhaseTimer(), self.sampling(iteration)
        prompts = self.cursor.next_interval()
        with timer("rollout"):
            rollouts = self.rollout.generate(prompts, params)
        with timer("verify"):
            mark_correct(rollouts)
        with timer("select"):
            examples = select_training_examples(rollouts, self.cfg.loop.selection, self.cfg.loop.top_k, self.rng)
        with timer("train"):
            train = self.train(examples, iteration)
        with timer("sync"):
            self.sync()
        with timer("evaluate"):
            val = self.evaluate_validation(iteration, params)
        record = {"iteration": iteration, "epoch": self.cursor.epoch, "weights_version": self.weights_version}
        record |= rollout_stats(rollouts, examples, params) | train | {"seconds": timer.seconds}
        record |= val.to_dict("val_") if val else {}
        self.run_dir.append_metrics(record)
        if self.cfg.checkpoint.every and iteration % self.cfg.checkpoint.every == 0:
            self.save_checkpoint(f"iter_{iteration:04d}", keep_last=self.cfg.checkpoint.keep_last)
        log.info(progress_line(record))

    def train(self, examples: Sequence[TrainExample], iteration: int) -> dict:
        """Train on the selected examples, restarting optimizer or weights as the training mode says."""
        mode = self.cfg.loop.mode
        if mode != TrainingMode.CONTINUOUS:
            self.trainers.start_stage(self.optim, reset_to_base=mode == TrainingMode.REST_EM)
        if not examples:
            return {"train_examples": 0, "train_steps": 0}
        stats = self.trainers.train(examples, self.cfg.train.epochs_per_iteration, self.cfg.run.seed + iteration)
        return {
            "train_examples": len(examples),
            "train_steps": stats[0].optimizer_steps,
            "optimizer_steps_in_stage": stats[0].steps_in_stage,  # grows across iterations only in continuous mode
            "learning_rate": stats[0].learning_rate,
            "train_loss": stages.mean_loss(stats),
            "train_tokens": sum(s.response_tokens for s in stats),
        }

    def sync(self) -> None:
        """Copy trainer rank 0's weights into every rollout worker under a new weights version."""
        self.weights_version += 1
        self.rollout.load_weights(self.trainers.export_weights_ref(), self.weights_version)

    def evaluate_validation(self, iteration: int, params: SamplingParams) -> EvalResult | None:
        every = self.cfg.loop.eval_every
        if not every or (iteration % every and iteration != self.cfg.loop.iterations):
            return None
        return evaluate(self.rollout, self.data.validation, params.with_(seed=self.cfg.run.seed))

    def evaluate_test(self, label: str) -> EvalResult | None:
        if not self.cfg.loop.eval_test:
            return None
        result = evaluate(self.rollout, self.data.test, self.sampling(0))
        log.info("%s test: greedy %.3f, Pass@%d %.3f", label, result.greedy_accuracy, result.k, result.pass_at_k)
        return result

    def save_checkpoint(self, name: str, keep_last: int | None = None) -> None:
        staging = self.run_dir.checkpoint_staging(name)
        self.trainers.save_pretrained(str(staging))
        self.run_dir.publish_checkpoint(name, keep_last)


def rollout_stats(rollouts: Sequence[PromptRollouts], examples: Sequence[TrainExample], params: SamplingParams) -> dict:
    """Per-iteration figures of the sampled responses."""
    return {
        "prompts": len(rollouts),
        "samples": sum(len(g.samples) for g in rollouts),
        "rollout_weights_version": min(s.weights_version for g in rollouts for s in g.samples),
        "temperature": params.temperature,
        "sample_accuracy": sample_accuracy(rollouts),
        "prompts_with_correct": pass_at_k(rollouts),
        "mean_response_tokens": mean_response_tokens(rollouts),
        "selected": len(examples),
    }


def progress_line(record: dict) -> str:
    """One readable log line for an iteration."""
    line = (
        f"iter {record['iteration']} v{record['weights_version']}: {record['prompts']} prompts, "
        f"sample acc {record['sample_accuracy']:.3f}, selected {record['selected']}, "
        f"loss {record.get('train_loss', float('nan')):.3f}"
    )
    if "val_greedy_accuracy" in record:
        line += f", val greedy {record['val_greedy_accuracy']:.3f} Pass@{record['val_k']} {record['val_pass_at_k']:.3f}"
    return line + f" | seconds {record['seconds']}"


def run_mstar(cfg: MStarConfig) -> dict:
    """Load data, create the run directory, start the actors and run; the entry point of `mstar run`."""
    data = load_datasets(cfg)
    connect_ray(cfg)  # before the run directory, so a layout that does not fit never touches an earlier run
    run = RunDir.create(cfg)
    log.info("run directory %s; prompts loaded: %s", run.path, {s: r["loaded"] for s, r in data.reports.items() if r})
    return MStarRun(cfg, run, data).run()
