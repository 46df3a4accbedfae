"""The M-STaR driver: pre-evolution stages, then online iterations of rollout, verify, select, train, sync."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path

import ray

from mstar_ray import stages
from mstar_ray.benchmarks.evaluate import evaluate_run_stage, stage_headlines
from mstar_ray.config import (
    PRM_RULES,
    ConfigError,
    MStarConfig,
    RunStage,
    TrainingMode,
)
from mstar_ray.config_checks import preflight
from mstar_ray.data.splits import Datasets, PromptCursor, load_datasets
from mstar_ray.evaluation import EvalResult, evaluate
from mstar_ray.groups import PRMGroup, RolloutGroup, TrainerGroup, dead_actors
from mstar_ray.metrics import mark_correct
from mstar_ray.monitor import Monitor, PhaseTimer, progress_line, rollout_stats
from mstar_ray.placement import Placement
from mstar_ray.plots import plot_dynamics
from mstar_ray.prm.labeling import read_step_labels
from mstar_ray.prm.pipeline import label_prompts, train_prm
from mstar_ray.pseudo_labels import apply_pseudo_labels
from mstar_ray.records import PromptRollouts, TrainExample
from mstar_ray.resources import connect_ray
from mstar_ray.rollout.sampling import SamplingParams
from mstar_ray.run_dir import RunDir
from mstar_ray.selection import SelectionSpec, select_training_examples
from mstar_ray.state import TRAINER_STATE_DIR, DriverState, rng_to_json
from mstar_ray.sync.coordinator import SyncStats, WeightSync
from mstar_ray.sync.transport import WeightSyncError
from mstar_ray.temperature import search_temperature

log = logging.getLogger("mstar")


class MStarRun:
    """One run: the actor groups, the data, the run directory, and the loop over iterations.

    With `resume`, a checkpoint holding a driver state, the run continues after that checkpoint's iteration: the
    trainers take its DeepSpeed state, the engines its weights, and the cursors, RNG, temperature and journals
    are put back as they were.
    """

    def __init__(
        self,
        cfg: MStarConfig,
        run: RunDir,
        data: Datasets,
        placement: Placement | None = None,
        resume: Path | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.data, self.placement = cfg, run, data, placement
        run.write_json("data_report.json", data.reports)
        self.optim = stages.optim_spec(cfg, cfg.train.lr)
        state = DriverState.read(resume) if resume else None
        self.rollout = RolloutGroup(cfg, cfg.model.path, placement)
        self.trainers = self.start_trainers(resume, state.stage_started if state else False)
        self.weight_sync = WeightSync(cfg.sync, self.trainers, self.rollout)
        self.rollout.set_after_restart(self.resync_rollout)
        self.prm: PRMGroup | None = None  # started after pre-evolution, when the PRM exists
        self.cursor = PromptCursor(data.labeled, cfg.loop.interval, cfg.run.seed)
        self.unlabeled = PromptCursor(data.unlabeled, cfg.loop.interval, cfg.run.seed + 1) if data.unlabeled else None
        self.rng = random.Random(cfg.run.seed)
        self.weights_version = 0
        self.total_train_steps = 0
        self.temperature = cfg.rollout.temperature  # moved by the automatic temperature search
        self.stage_started = False  # the self-evolving optimizer stage (continuous mode: one for the whole loop)
        self.trainer_rebuilds = 0
        self.best: dict | None = None
        self.first_iteration = 1
        lp = cfg.loop
        self.selection = SelectionSpec(lp.selection, lp.top_k, lp.score_threshold, cfg.prm.aggregation)
        self.monitor = Monitor(cfg, run.path, first_step=state.iteration + 1 if state else 0)
        self.resumed_from = resume
        if resume is not None:
            self.restore(resume, state)

    def start_trainers(self, checkpoint: Path | None, stage_started: bool) -> TrainerGroup:
        """Trainer ranks from model.path, or rebuilt from a checkpoint: the pre-evolved weights (the ReST-EM base),
        then the checkpoint's DeepSpeed state when a stage was live."""
        if checkpoint is None:
            return TrainerGroup(self.cfg, self.cfg.model.path, placement=self.placement)
        trainers = TrainerGroup(self.cfg, str(self.run_dir.checkpoints / "pre_evolved"), placement=self.placement)
        trainers.snapshot_base()
        if stage_started:
            trainers.start_stage(self.optim)
            trainers.load_state(str(checkpoint / TRAINER_STATE_DIR))
        return trainers

    def restore(self, checkpoint: Path, state: DriverState) -> None:
        """Put the loop back where `checkpoint` left it and give every engine its weights."""
        self.cursor.restore(state.cursor)
        if self.unlabeled is not None and state.unlabeled_cursor is not None:
            self.unlabeled.restore(state.unlabeled_cursor)
        self.rng.setstate(state.rng_state())
        self.temperature, self.total_train_steps = state.temperature, state.total_train_steps
        self.stage_started, self.best = state.stage_started, state.best
        self.trainer_rebuilds = state.recoveries.get("trainer_rebuilds", 0)
        self.rollout.restarts.update({k: v for k, v in state.recoveries.items() if k in self.rollout.names})
        self.run_dir.restore_journals(checkpoint)
        if self.best and (self.run_dir.checkpoints / self.best["name"]).is_dir():
            self.run_dir.point_best(self.best["name"])  # a kill between pruning and relinking can leave it stale
        self.first_iteration = state.iteration + 1
        self.sync(version=state.weights_version)  # the engines hold the checkpoint's weights, under its version
        if self.cfg.prm.enabled:
            self.prm = PRMGroup(self.cfg, self.cfg.prm.path or str(self.run_dir.path / "prm"), self.placement)
            self.prm.restarts.update({k: v for k, v in state.recoveries.items() if k in self.prm.names})
        log.info("resumed from %s after iteration %d (weights v%d)", checkpoint, state.iteration, self.weights_version)

    def sampling(self, iteration: int) -> SamplingParams:
        """The rollout sampling settings of one iteration, at the current temperature."""
        r = self.cfg.rollout
        seed = self.cfg.run.seed * 1_000_003 + iteration
        return SamplingParams(r.samples_per_prompt, self.temperature, r.top_p, r.top_k, r.max_new_tokens, seed)

    def run(self) -> dict:
        """Pre-evolve, evaluate, iterate, evaluate again; returns the summary written to summary.json."""
        start = time.perf_counter()
        resumed = self.resumed_from is not None
        if not resumed:
            if self.cfg.seed_sft.enabled or self.cfg.warmup.enabled:
                self.evaluate_benchmarks(RunStage.BASE)
            self.pre_evolve()
            self.evaluate_benchmarks(RunStage.PRE_EVOLVED)
            pre_test = self.evaluate_test("pre-evolved")
            self.run_dir.write_json("pre_evolved_test.json", pre_test.to_dict() if pre_test else None)
            self.write_state(self.run_dir.checkpoints / "pre_evolved", 0)
        pre_test_dict = json.loads((self.run_dir.path / "pre_evolved_test.json").read_text())
        if self.cfg.loop.mode == TrainingMode.CONTINUOUS and not self.stage_started:
            self.trainers.start_stage(self.optim)
            self.stage_started = True
        with self.monitor.iterations(self.first_iteration - 1) as progress:
            for iteration in range(self.first_iteration, self.cfg.loop.iterations + 1):
                if self.cfg.temperature.auto and (iteration - 1) % self.cfg.temperature.every == 0:
                    self.tune_temperature(iteration)
                progress(self.iterate(iteration))
        final_test = self.evaluate_test("final") if self.cfg.loop.iterations else None
        self.save_checkpoint("final")
        if self.cfg.loop.iterations:
            self.evaluate_benchmarks(RunStage.FINAL)
        final = final_test.to_dict() if final_test else pre_test_dict
        summary = {
            "mode": self.cfg.loop.mode.value,
            "iterations": self.cfg.loop.iterations,
            "selection": self.cfg.loop.selection.value,
            "weights_version": self.weights_version,
            "final_temperature": self.temperature,
            "wall_seconds": round(time.perf_counter() - start, 1),
            "resumed_after": self.first_iteration - 1 if resumed else None,
            "recoveries": self.recoveries(),
            "best_checkpoint": self.best,
            "pre_evolved": pre_test_dict,
            "final": final,
            "benchmarks": stage_headlines(self.run_dir.path),
        }
        self.run_dir.write_json("summary.json", summary)
        self.monitor.close()
        return summary

    def shutdown(self) -> None:
        """Stop every actor of the run now (rather than when the last handle is collected)."""
        self.weight_sync.close()
        for group in (self.rollout, self.trainers, self.prm):
            if group is not None:
                group.shutdown()
        self.monitor.close()

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
        self.monitor.record(record)

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
            report["train"] = train_prm(self.cfg, examples, str(backbone), path, source, self.placement)
        self.prm = PRMGroup(self.cfg, path, self.placement)
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

    def iterate(self, iteration: int) -> dict:
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
        train, synced = self.train_and_sync(examples, iteration, timer)
        with timer("evaluate"):
            val = self.evaluate_validation(iteration, params)
        record = {"iteration": iteration, "epoch": self.cursor.epoch, "weights_version": self.weights_version}
        record |= rollout_stats(rollouts, examples, params) | extra | train
        record |= {"sync_bytes": synced.bytes, "sync_gb_per_s": round(synced.gb_per_s, 3), "sync_full": synced.full}
        record |= {"total_train_steps": self.total_train_steps, "seconds": timer.seconds}
        record |= val.to_dict("val_") if val else {}
        record |= {"recoveries": self.recoveries()}
        self.run_dir.append_metrics(record)
        self.run_dir.append_record("prompts.jsonl", {"iteration": iteration, "ids": [p.id for p in prompts]})
        plot_dynamics(self.run_dir.read_metrics(), self.run_dir.path / "dynamics.png")
        if self.cfg.checkpoint.every and iteration % self.cfg.checkpoint.every == 0:
            name = f"iter_{iteration:04d}"
            value = record.get(self.cfg.checkpoint.best_metric)
            if value is not None and (self.best is None or value > self.best["value"]):
                self.best = {"name": name, "metric": self.cfg.checkpoint.best_metric, "value": value}
            self.save_checkpoint(name, iteration)
        log.info(progress_line(record))
        self.monitor.record(record)
        return record

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
            self.stage_started = True  # checkpoints now carry the trainers' state, weights included
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

    def evaluate_benchmarks(self, stage: RunStage) -> None:
        """Greedy accuracy on eval.benchmarks at this stage (eval.run_stages) over the rollout workers."""
        if self.data.benchmarks and stage in self.cfg.eval.run_stages:
            evaluate_run_stage(self.cfg, self.rollout, self.data.benchmarks, self.run_dir.path, stage.value)

    def save_checkpoint(self, name: str, iteration: int | None = None) -> None:
        """Write a checkpoint atomically: the policy (`save_pretrained`), and for an iteration also the trainers'
        DeepSpeed state, the journals and the driver state; prune to the last checkpoint.keep_last plus the best."""
        staging = self.run_dir.checkpoint_staging(name)
        self.trainers.save_pretrained(str(staging))
        if iteration is None:
            self.run_dir.publish_checkpoint(name)
            return
        if self.stage_started:
            self.trainers.save_state(str(staging / TRAINER_STATE_DIR))
        self.write_state(staging, iteration)
        keep = self.best["name"] if self.best else None
        self.run_dir.publish_checkpoint(name, self.cfg.checkpoint.keep_last, keep=keep)
        if self.best and self.best["name"] == name:
            self.run_dir.point_best(name)

    def write_state(self, checkpoint: Path, iteration: int) -> None:
        """The journals, then the driver state (its presence marks the checkpoint resumable)."""
        self.run_dir.snapshot_journals(checkpoint)
        DriverState(
            iteration=iteration,
            weights_version=self.weights_version,
            total_train_steps=self.total_train_steps,
            temperature=self.temperature,
            cursor=self.cursor.state(),
            unlabeled_cursor=self.unlabeled.state() if self.unlabeled else None,
            selection_rng=rng_to_json(self.rng.getstate()),
            stage_started=self.stage_started,
            recoveries=self.recoveries(),
            best=self.best,
        ).write(checkpoint)

    def recoveries(self) -> dict[str, int]:
        """Actor restarts by name and trainer group rebuilds, since the run began."""
        counts = dict(self.rollout.restarts) | (dict(self.prm.restarts) if self.prm else {})
        return counts | ({"trainer_rebuilds": self.trainer_rebuilds} if self.trainer_rebuilds else {})

    def resync_rollout(self) -> None:
        """After rollout workers were restarted: form the sync group again and send the current weights."""
        self.sync(version=self.weights_version, reform=True)

    def train_and_sync(
        self, examples: Sequence[TrainExample], iteration: int, timer: PhaseTimer
    ) -> tuple[dict, SyncStats]:
        """Train, then sync; a trainer rank that dies makes the group be rebuilt from the last checkpoint and the
        iteration's training run again (at most fault.max_trainer_rebuilds times over the run)."""
        train, reform = None, False
        while True:
            try:
                if train is None:
                    with timer("train"), self.rollout.asleep():
                        train = self.train(examples, iteration)
                with timer("sync"):
                    synced = self.sync(reform=reform)
                self.total_train_steps += train["train_steps"]  # counted once the steps reached the engines
                return train, synced
            except (ray.exceptions.RayError, WeightSyncError) as err:
                # A rank's death reaches its peers first as a failed collective (a task error), so look for the dead.
                dead = dead_actors(self.trainers.ranks)
                if not dead:
                    raise
                self.rebuild_trainers([self.trainers.names[i] for i in dead], iteration, err)
                train, reform = None, True

    def rebuild_trainers(self, dead: list[str], iteration: int, err: Exception) -> None:
        """Replace the whole trainer group (DeepSpeed ranks cannot rejoin a running group) from the checkpoint of the
        previous iteration; an older one would silently undo iterations, so that case is left to --resume."""
        self.trainer_rebuilds += 1
        limit = self.cfg.fault.max_trainer_rebuilds
        if self.trainer_rebuilds > limit:
            raise RuntimeError(
                f"{', '.join(dead)} died; trainer group rebuilt {limit} times already (fault.max_trainer_rebuilds)"
            ) from err
        checkpoint = self.run_dir.latest_state()
        if checkpoint is None:
            raise RuntimeError(f"{', '.join(dead)} died before the first checkpoint: nothing to rebuild from") from err
        state = DriverState.read(checkpoint)
        if state.iteration != iteration - 1:
            raise RuntimeError(
                f"{', '.join(dead)} died in iteration {iteration} but the last checkpoint is of iteration "
                f"{state.iteration} (checkpoint.every={self.cfg.checkpoint.every}); continue with "
                f"`mstar run --resume {self.run_dir.path}`"
            ) from err
        log.warning(
            "%s died (%s); rebuilding the trainer group from %s (rebuild %d of at most %d)",
            ", ".join(dead),
            type(err).__name__,
            checkpoint.name,
            self.trainer_rebuilds,
            limit,
        )
        self.trainers.shutdown()
        self.trainers = self.start_trainers(checkpoint, state.stage_started)
        if self.stage_started and not state.stage_started:
            self.trainers.start_stage(self.optim)
        self.weight_sync.trainers = self.trainers  # the group is formed again by the next sync

    def sync(self, version: int | None = None, reform: bool = False) -> SyncStats:
        """Broadcast trainer rank 0's weights to every rollout engine under a new weights version (or `version`),
        forming the sync group again first when asked. Engines that die on the way are restarted (each at most
        fault.max_actor_restarts times) and the group formed again; a dead trainer rank is left to the caller."""
        version = self.weights_version + 1 if version is None else version
        while True:
            try:
                if reform:
                    self.weight_sync.reform()
                stats = self.weight_sync.sync(version)
                break
            except WeightSyncError as err:
                if dead_actors(self.trainers.ranks):
                    raise
                dead = dead_actors(self.rollout.workers)
                if not dead:
                    raise
                for i in dead:
                    self.rollout.restart(i, err)
                reform = True
        self.weights_version = stats.version
        return stats


def run_mstar(cfg: MStarConfig, resume: str | Path | None = None) -> dict:
    """Load data, create (or reopen, to resume) the run directory, reserve the placement group, start the actors
    and run; the entry point of `mstar run`."""
    p = cfg.prm
    if p.enabled and p.path is None and p.labels is None and p.label.policy is not None:
        raise ConfigError(
            "prm.label.policy is for `mstar prm label`; `mstar run` labels with its own pre-evolved model. "
            "Unset it, or run `mstar prm label` first and set prm.labels"
        )
    checkpoint = None
    if resume is not None:
        run = RunDir.open(resume)
        if (run.path / "summary.json").exists():
            raise ValueError(f"{run.path} finished already (summary.json exists): there is nothing to resume")
        checkpoint = run.latest_state()
        if checkpoint is None:
            raise ValueError(
                f"{run.path} has no resumable checkpoint (the run stopped before pre-evolution finished); "
                "start it again with `mstar run --config`"
            )
    data = load_datasets(cfg, benchmarks=True)
    preflight(cfg, data)
    connect_ray(cfg)  # before the run directory, so a layout that does not fit never touches an earlier run
    placement = Placement(cfg)
    try:
        if resume is None:
            run = RunDir.create(cfg)
        loaded = {s: r["loaded"] for s, r in data.reports.items() if r}
        log.info("run directory %s; prompts loaded: %s", run.path, loaded)
        loop = MStarRun(cfg, run, data, placement, checkpoint)
        try:
            return loop.run()
        finally:
            loop.shutdown()
    finally:
        placement.remove()
