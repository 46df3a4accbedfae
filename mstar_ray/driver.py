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
from mstar_ray.config import (
    PRM_RULES,
    ConfigError,
    MStarConfig,
    TrainingMode,
)
from mstar_ray.data.llava import load_prompts
from mstar_ray.evaluation import EvalResult, evaluate
from mstar_ray.groups import PRMGroup, RolloutGroup, TrainerGroup
from mstar_ray.metrics import mark_correct, mean_response_tokens, pass_at_k, sample_accuracy
from mstar_ray.plots import plot_dynamics
from mstar_ray.prm.labeling import read_step_labels
from mstar_ray.prm.pipeline import label_prompts, train_prm
from mstar_ray.pseudo_labels import apply_pseudo_labels
from mstar_ray.records import Prompt, PromptRollouts, TrainExample
from mstar_ray.resources import check_fits, check_prm_training_fits
from mstar_ray.rollout.sampling import SamplingParams
from mstar_ray.run_dir import RunDir
from mstar_ray.selection import SelectionSpec, select_training_examples
from mstar_ray.sync.coordinator import SyncStats, WeightSync
from mstar_ray.temperature import search_temperature

log = logging.getLogger("mstar")


@dataclass
class Datasets:
    """The prompt sets of a run."""

    labeled: list[Prompt]
    validation: list[Prompt]
    test: list[Prompt]
    seed_cot: list[Prompt]
    unlabeled: list[Prompt]
    reports: dict  # split -> what was loaded and skipped, with reasons


def load_datasets(cfg: MStarConfig) -> Datasets:
    """Load every configured split, counting what was skipped and why."""
    d = cfg.data
    loaded, reports = {}, {}
    for split in ("labeled", "validation", "test", "seed_cot", "unlabeled"):
        path = getattr(d, split)
        args = (d.image_root, d.on_bad_row, d.check_images, split != "unlabeled")
        prompts, report = load_prompts(path, *args) if path else ([], None)
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


def connect_ray(cfg: MStarConfig, with_trainers: bool = True, prm_training_only: bool = False) -> None:
    """Join the configured cluster or start Ray in this process, then check the actors fit."""
    if not ray.is_initialized():
        if cfg.ray.address:
            ray.init(address=cfg.ray.address)
        else:  # a single-node Ray inside this process: keep it on loopback
            ray.init(num_cpus=cfg.ray.num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1")
    if prm_training_only:
        check_prm_training_fits(cfg, ray.cluster_resources())
    else:
        check_fits(cfg, ray.cluster_resources(), with_trainers)


class MStarRun:
    """One run: the actor groups, the data, the run directory, and the loop over iterations."""

    def __init__(self, cfg: MStarConfig, run: RunDir, data: Datasets) -> None:
        self.cfg, self.run_dir, self.data = cfg, run, data
        run.write_json("data_report.json", data.reports)
        self.rollout = RolloutGroup(cfg, cfg.model.path)
        self.trainers = TrainerGroup(cfg, cfg.model.path)
        self.weight_sync = WeightSync(cfg.sync, self.trainers, self.rollout)
        self.prm: PRMGroup | None = None  # started after pre-evolution, when the PRM exists
        self.cursor = PromptCursor(data.labeled, cfg.loop.interval, cfg.run.seed)
        self.unlabeled = PromptCursor(data.unlabeled, cfg.loop.interval, cfg.run.seed + 1) if data.unlabeled else None
        self.rng = random.Random(cfg.run.seed)
        self.weights_version = 0
        self.total_train_steps = 0
        self.temperature = cfg.rollout.temperature  # moved by the automatic temperature search
        self.optim = stages.optim_spec(cfg, cfg.train.lr)
        lp = cfg.loop
        self.selection = SelectionSpec(lp.selection, lp.top_k, lp.score_threshold, cfg.prm.aggregation)

    def sampling(self, iteration: int) -> SamplingParams:
        """The rollout sampling settings of one iteration, at the current temperature."""
        r = self.cfg.rollout
        seed = self.cfg.run.seed * 1_000_003 + iteration
        return SamplingParams(r.samples_per_prompt, self.temperature, r.top_p, r.top_k, r.max_new_tokens, seed)

    def run(self) -> dict:
        """Pre-evolve, evaluate, iterate, evaluate again; returns the summary written to summary.json."""
        start = time.perf_counter()
        self.pre_evolve()
        pre_test = self.evaluate_test("pre-evolved")
        if self.cfg.loop.mode == TrainingMode.CONTINUOUS:
            self.trainers.start_stage(self.optim)
        for iteration in range(1, self.cfg.loop.iterations + 1):
            if self.cfg.temperature.auto and (iteration - 1) % self.cfg.temperature.every == 0:
                self.tune_temperature(iteration)
            self.iterate(iteration)
        final_test = self.evaluate_test("final") if self.cfg.loop.iterations else pre_test
        self.save_checkpoint("final")
        summary = {
            "mode": self.cfg.loop.mode.value,
            "iterations": self.cfg.loop.iterations,
            "selection": self.cfg.loop.selection.value,
            "weights_version": self.weights_version,
            "final_temperature": self.temperature,
            "wall_seconds": round(time.perf_counter() - start, 1),
            "pre_evolved": pre_test.to_dict() if pre_test else None,
            "final": final_test.to_dict() if final_test else None,
        }
        self.run_dir.write_json("summary.json", summary)
        return summary

    def pre_evolve(self) -> None:
        """Seed SFT and/or warm-up, then sync and keep the result as the pre-evolved (base) model; then the PRM."""
        record: dict = {"iteration": 0}
        timer = PhaseTimer()
        if self.cfg.seed_sft.enabled:
            with timer("seed_sft"):
                with self.rollout.asleep():
                    record["seed_sft"] = stages.seed_sft(self.cfg, self.trainers, self.data.seed_cot)
                self.sync()
        if self.cfg.warmup.enabled:
            with timer("warmup"):
                record["warmup"] = stages.warmup(self.cfg, self.rollout, self.trainers, self.data.labeled)
                self.sync()
        self.trainers.snapshot_base()
        self.save_checkpoint("pre_evolved")
        if self.cfg.prm.enabled:
            with timer("prm"):
                record["prm"] = self.prepare_prm()
        with timer("evaluate"):
            val = self.evaluate_validation(0, self.sampling(0))
        record |= {"weights_version": self.weights_version, "total_train_steps": 0, "temperature": self.temperature}
        record |= (val.to_dict("val_") if val else {}) | {"seconds": timer.seconds}
        self.run_dir.append_metrics(record)

    def prepare_prm(self) -> dict:
        """Start the PRM actors: from prm.path, or label (or read labels) and train one from the pre-evolved model."""
        p, report = self.cfg.prm, {}
        path = p.path
        if path is None:
            if p.labels:
                examples, source = read_step_labels(p.labels), p.labels
            else:
                source = str(self.run_dir.path / "prm_labels.jsonl")
                report["labels"] = label_prompts(self.cfg, self.rollout, self.data.labeled, source)
                examples = read_step_labels(source)
            path = str(self.run_dir.path / "prm")
            backbone = self.run_dir.path / "checkpoints" / "pre_evolved"
            report["train"] = train_prm(self.cfg, examples, str(backbone), path, source)
        self.prm = PRMGroup(self.cfg, path)
        return report | {"path": path}

    def tune_temperature(self, iteration: int) -> None:
        """Measure the validation curve over the temperature grid and continue at its best point."""
        t, start = self.cfg.temperature, time.perf_counter()
        prompts = self.data.validation[: t.prompts]
        base = self.sampling(iteration).with_(seed=self.cfg.run.seed + 7)
        search = search_temperature(
            self.rollout, self.prm, prompts, base, t.grid, t.criterion, self.cfg.prm.aggregation
        )
        log.info("temperature %.2f -> %.2f (by %s)", self.temperature, search.chosen, t.criterion.value)
        self.temperature = search.chosen
        seconds = round(time.perf_counter() - start, 3)
        self.run_dir.append_metrics(
            {
                "iteration": iteration,
                "temperature_search": search.to_dict() | {"iteration": iteration},
                "seconds": seconds,
            }
        )

    def iterate(self, iteration: int) -> None:
        """One self-evolving iteration, each phase timed."""
        timer, params, extra = PhaseTimer(), self.sampling(iteration), {}
        pseudo_labeled: list[PromptRollouts] = []
        prompts = self.cursor.next_interval()
        with timer("rollout"):
            rollouts = self.rollout.generate(prompts, params)
        with timer("verify"):
            mark_correct(rollouts)
        if self.prm is not None and self.selection.rule in PRM_RULES:
            with timer("score"):
                extra["scored"] = self.prm.score(rollouts, only_correct=True)
        if self.mixing_in(iteration):
            with timer("pseudo_label"):
                pseudo_labeled, agreement = self.pseudo_labeled(params)
            extra |= {"pseudo_labeled_prompts": len(pseudo_labeled), "pseudo_label_accuracy": agreement}
        with timer("select"):
            examples = select_training_examples(rollouts + pseudo_labeled, self.selection, self.rng)
        with timer("train"), self.rollout.asleep():
            train = self.train(examples, iteration)
        with timer("sync"):
            synced = self.sync()
        with timer("evaluate"):
            val = self.evaluate_validation(iteration, params)
        record = {"iteration": iteration, "epoch": self.cursor.epoch, "weights_version": self.weights_version}
        record |= rollout_stats(rollouts, examples, params) | extra | train
        record |= {"sync_bytes": synced.bytes, "sync_gb_per_s": round(synced.gb_per_s, 3), "sync_full": synced.full}
        record |= {"total_train_steps": self.total_train_steps, "seconds": timer.seconds}
        record |= val.to_dict("val_") if val else {}
        self.run_dir.append_metrics(record)
        plot_dynamics(self.run_dir.read_metrics(), self.run_dir.path / "dynamics.png")
        if self.cfg.checkpoint.every and iteration % self.cfg.checkpoint.every == 0:
            self.save_checkpoint(f"iter_{iteration:04d}", keep_last=self.cfg.checkpoint.keep_last)
        log.info(progress_line(record))

    def mixing_in(self, iteration: int) -> bool:
        """Whether unlabeled prompts join this iteration (after the T_mixin share of the iterations)."""
        lp = self.cfg.loop
        return lp.mixin_unlabeled and self.unlabeled is not None and iteration > lp.mixin_after * lp.iterations

    def pseudo_labeled(self, params: SamplingParams) -> tuple[list[PromptRollouts], float | None]:
        """The next interval of unlabeled prompts, sampled, scored and relabelled by PRM-weighted voting."""
        rollouts = self.rollout.generate(self.unlabeled.next_interval(), params)
        self.prm.score(rollouts)
        relabelled, agreement = apply_pseudo_labels(rollouts, self.cfg.prm.aggregation)
        mark_correct(relabelled)
        return relabelled, agreement

    def train(self, examples: Sequence[TrainExample], iteration: int) -> dict:
        """Train on the selected examples, restarting optimizer or weights as the training mode says."""
        mode = self.cfg.loop.mode
        if mode != TrainingMode.CONTINUOUS:
            self.trainers.start_stage(self.optim, reset_to_base=mode == TrainingMode.REST_EM)
        if not examples:
            return {"train_examples": 0, "train_steps": 0}
        stats = self.trainers.train(examples, self.cfg.train.epochs_per_iteration, self.cfg.run.seed + iteration)
        self.total_train_steps += stats[0].optimizer_steps
        return {
            "train_examples": len(examples),
            "train_steps": stats[0].optimizer_steps,
            "optimizer_steps_in_stage": stats[0].steps_in_stage,  # grows across iterations only in continuous mode
            "learning_rate": stats[0].learning_rate,
            "train_loss": stages.mean_loss(stats),
            "train_tokens": sum(s.response_tokens for s in stats),
        }

    def sync(self) -> SyncStats:
        """Broadcast trainer rank 0's weights to every rollout engine under a new weights version."""
        stats = self.weight_sync.sync(self.weights_version + 1)
        self.weights_version = stats.version
        return stats

    def evaluate_validation(self, iteration: int, params: SamplingParams) -> EvalResult | None:
        every = self.cfg.loop.eval_every
        if not every or (iteration % every and iteration != self.cfg.loop.iterations):
            return None
        sampling = params.with_(seed=self.cfg.run.seed)
        return evaluate(self.rollout, self.data.validation, sampling, self.prm, self.cfg.prm.aggregation)

    def evaluate_test(self, label: str) -> EvalResult | None:
        if not self.cfg.loop.eval_test:
            return None
        sampling = self.sampling(0).with_(temperature=self.cfg.rollout.temperature)  # one protocol before and after
        result = evaluate(self.rollout, self.data.test, sampling, self.prm, self.cfg.prm.aggregation)
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
        if record.get("val_reward_pass_at_2") is not None:
            line += (
                f" Reward-Pass@2 {record['val_reward_pass_at_2']:.3f} (random-2 {record['val_random_pass_at_2']:.3f})"
            )
    return line + f" | seconds {record['seconds']}"


def run_mstar(cfg: MStarConfig) -> dict:
    """Load data, create the run directory, start the actors and run; the entry point of `mstar run`."""
    p = cfg.prm
    if p.enabled and p.path is None and p.labels is None and p.label.policy is not None:
        raise ConfigError(
            "prm.label.policy is for `mstar prm label`; `mstar run` labels with its own pre-evolved model. "
            "Unset it, or run `mstar prm label` first and set prm.labels"
        )
    data = load_datasets(cfg)
    connect_ray(cfg)  # before the run directory, so a layout that does not fit never touches an earlier run
    run = RunDir.create(cfg)
    log.info("run directory %s; prompts loaded: %s", run.path, {s: r["loaded"] for s, r in data.reports.items() if r})
    return MStarRun(cfg, run, data).run()
