"""The M-STaR driver: pre-evolution stages, then online iterations of rollout, verify, score, select, train, sync,
evaluate and temperature adaptation (docs/recipe.md); recovery and checkpoints are one call each from here."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from mstar_ray.config import PRM_RULES, MStarConfig, RunStage, TrainingMode
from mstar_ray.core.records import PromptRollouts, TrainExample
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.core.seeds import derive_seed
from mstar_ray.eval.benchmarks.runner import evaluate_run_stage, stage_headlines
from mstar_ray.eval.metrics import mark_correct
from mstar_ray.eval.process_metrics import PairwiseAccuracy, prm_pairwise_accuracy
from mstar_ray.eval.temperature import search_temperature
from mstar_ray.eval.validation import EvalResult
from mstar_ray.groups.base import dead_actors
from mstar_ray.groups.placement import Placement
from mstar_ray.groups.prm import PRMGroup
from mstar_ray.groups.rollout import RolloutGroup
from mstar_ray.loop import stages
from mstar_ray.loop.checkpoints import Checkpoints
from mstar_ray.loop.datasets import Datasets, PromptCursor
from mstar_ray.loop.evaluation import held_out_result, validation_due, validation_result
from mstar_ray.loop.prm_stage import prepare_prm
from mstar_ray.loop.record import IterationRecord, PseudoLabelStats, RolloutStats, TrainResult, selected_data_quality
from mstar_ray.loop.recovery import EngineWeights, TrainerRebuilds, retry_on_dead_trainers, start_trainers
from mstar_ray.loop.run_dir import RunDir
from mstar_ray.loop.selection import SelectionSpec, select_training_examples
from mstar_ray.loop.state import DriverState
from mstar_ray.prm.pseudo_labels import apply_pseudo_labels
from mstar_ray.sync.coordinator import SyncStats
from mstar_ray.telemetry.monitor import Monitor, PhaseTimer, progress_line
from mstar_ray.telemetry.plots import plot_dynamics
from mstar_ray.telemetry.profile import BusySpan, record_profile

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
        self.created = time.time()  # the actors' start-up is the first phase of the pre-evolution's profile
        self.cfg, self.run_dir, self.data, self.placement = cfg, run, data, placement
        run.write_json("data_report.json", data.reports)
        self.optim = stages.optim_spec(cfg, cfg.train.lr)
        state = DriverState.read(resume) if resume else None
        self.rollout = RolloutGroup(cfg, cfg.model.path, placement)
        self.trainers = start_trainers(cfg, run, placement, self.optim, resume, state.stage_started if state else False)
        self.weights = EngineWeights(cfg, self.trainers, self.rollout)
        self.prm: PRMGroup | None = None  # started after pre-evolution, when the PRM exists
        seed = cfg.run.seed  # every draw below derives from it and from what the draw is for
        self.cursor = PromptCursor(data.labeled, cfg.loop.interval, derive_seed(seed, "labeled_order"))
        unlabeled_seed = derive_seed(seed, "unlabeled_order")
        self.unlabeled = PromptCursor(data.unlabeled, cfg.loop.interval, unlabeled_seed) if data.unlabeled else None
        self.total_train_steps = 0
        self.temperature = cfg.rollout.temperature  # moved by the automatic temperature search
        self.stage_started = False  # the self-evolving optimizer stage (continuous mode: one for the whole loop)
        self.rebuilds = TrainerRebuilds(run, cfg.fault.max_trainer_rebuilds, cfg.checkpoint.every)
        self.checkpoints = Checkpoints(run, cfg.checkpoint)
        lp = cfg.loop
        self.selection = SelectionSpec(lp.selection, lp.top_k, lp.score_threshold, cfg.prm.aggregation)
        self.monitor = Monitor(cfg, run.path, first_step=state.iteration + 1 if state else 0)
        self.first_iteration = state.iteration + 1 if state else 1
        self.resumed_from = resume
        if resume is not None:
            self.restore(resume, state)

    def fit(self) -> dict:
        """Pre-evolve and evaluate, iterate, evaluate again; returns the summary written to summary.json."""
        start = time.perf_counter()
        if self.resumed_from is None:
            self.pre_evolve()
        if self.cfg.loop.mode == TrainingMode.CONTINUOUS and not self.stage_started:
            self.trainers.start_stage(self.optim)  # one optimizer and schedule across every iteration
            self.stage_started = True
        with self.monitor.iterations(self.first_iteration - 1) as progress:
            for iteration in range(self.first_iteration, self.cfg.loop.iterations + 1):
                progress(self.iterate(iteration))
        timer = PhaseTimer()
        with timer("test"):
            final_test = self.evaluate_test("final") if self.cfg.loop.iterations else None
        with timer("checkpoint"):
            self.checkpoints.save_weights("final", self.trainers)
        if self.cfg.loop.iterations:
            with timer("benchmarks"):
                self.evaluate_benchmarks(RunStage.FINAL)
        summary = self.summary(final_test, round(time.perf_counter() - start, 1)) | {"profile": self.profile(timer)}
        self.run_dir.write_json("summary.json", summary)
        self.monitor.close()
        return summary

    def summary(self, final_test: EvalResult | None, wall_seconds: float) -> dict:
        """What summary.json holds: the run's settings, its outcome before and after, recoveries, the best."""
        pre_test = self.run_dir.read_json("pre_evolved_test.json")
        return {
            "mode": self.cfg.loop.mode.value,
            "iterations": self.cfg.loop.iterations,
            "selection": self.cfg.loop.selection.value,
            "weights_version": self.weights.version,
            "final_temperature": self.temperature,
            "wall_seconds": wall_seconds,
            "resumed_after": self.first_iteration - 1 if self.resumed_from else None,
            "recoveries": self.recoveries(),
            "best_checkpoint": asdict(self.checkpoints.best) if self.checkpoints.best else None,
            "pre_evolved": pre_test,
            "final": final_test.to_dict() if final_test else pre_test,
            "selected_data": selected_data_quality(self.run_dir.read_metrics()),
            "benchmarks": stage_headlines(self.run_dir.path),
        }

    def iterate(self, iteration: int) -> dict:
        """One self-evolving iteration, each phase timed; returns its metrics.jsonl record."""
        timer, scored, pseudo_rollouts, agreement, mixing = PhaseTimer(), None, [], None, self.mixing_in(iteration)
        if self.temperature_due(iteration):
            with timer("adapt_temperature"):
                self.adapt_temperature(iteration)
        params, prompts = self.sampling(iteration), self.cursor.next_interval()
        with timer("rollout"):
            rollouts = self.rollout.generate(prompts, params)
        with timer("verify"):
            mark_correct(rollouts)
        if self.prm is not None and self.selection.rule in PRM_RULES:
            with timer("score"):
                scored = self.prm.score(rollouts, only_correct=True)
        if mixing:
            with timer("pseudo_label"):
                pseudo_rollouts, agreement = self.pseudo_labeled(iteration, params)
        with timer("select"):
            examples = self.select(rollouts, "selection", iteration)
            pseudo_examples = self.select(pseudo_rollouts, "pseudo_selection", iteration)
        with timer("train"):
            train = self.train_phase(examples + pseudo_examples, iteration)
        with timer("sync"):
            synced, train = self.sync_phase(examples + pseudo_examples, iteration, train)
        self.total_train_steps += train.steps  # counted once the steps reached the engines
        with timer("evaluate"):
            validation = self.evaluate_validation(iteration, params)
        record = IterationRecord(
            iteration=iteration,
            epoch=self.cursor.epoch,
            weights_version=self.weights.version,
            rollout=RolloutStats.of(rollouts, examples, params, self.selection.k),
            train=train,
            sync=synced,
            total_train_steps=self.total_train_steps,
            seconds=timer.seconds,
            scored=scored,
            pairwise=self.pairwise(rollouts, iteration) if scored is not None else None,
            pseudo_labels=PseudoLabelStats(len(pseudo_rollouts), agreement, len(pseudo_examples)) if mixing else None,
            validation=validation,
            recoveries=self.recoveries(),
        ).to_json()
        self.journal(record | {"profile": self.profile(timer)}, prompts)
        if self.checkpoints.due(iteration):
            self.checkpoints.save_iteration(iteration, self.trainers, self.state(iteration), self.stage_started, record)
        log.info(progress_line(record))
        return record

    def pre_evolve(self) -> None:
        """Base benchmarks; seed SFT and/or warm-up, synced and kept as the pre-evolved (base) model; the PRM; the
        pre-evolved model's validation, benchmarks and test; then its checkpoint is made resumable."""
        record, timer = {"iteration": 0}, PhaseTimer(opened=self.created)
        timer.mark("start", self.created)
        if self.cfg.seed_sft.enabled or self.cfg.warmup.enabled:
            with timer("base_benchmarks"):
                self.evaluate_benchmarks(RunStage.BASE)
        if self.cfg.seed_sft.enabled:
            with timer("seed_sft"):
                record["seed_sft"] = stages.seed_sft(self.cfg, self.rollout, self.trainers, self.data.seed_cot)
                self.weights.sync()
        if self.cfg.warmup.enabled:
            with timer("warmup"):
                record["warmup"] = stages.warmup(self.cfg, self.rollout, self.trainers, self.data.labeled)
                self.weights.sync()
        with timer("checkpoint"):
            self.trainers.snapshot_base()
            self.checkpoints.save_weights("pre_evolved", self.trainers)
        prm_spans: list[BusySpan] = []  # the PRM trainer ranks', drained before they stop
        if self.cfg.prm.enabled:
            with timer("prm"):
                path, record["prm"] = prepare_prm(
                    self.cfg, self.rollout, self.data.labeled, self.run_dir, self.placement, prm_spans
                )
                self.prm = PRMGroup(self.cfg, path, self.placement)
        with timer("evaluate"):
            val = self.evaluate_validation(0, self.sampling(0))
        with timer("benchmarks"):
            self.evaluate_benchmarks(RunStage.PRE_EVOLVED)
        with timer("test"):
            pre_test = self.evaluate_test("pre-evolved")
        record |= {"weights_version": self.weights.version, "total_train_steps": 0, "temperature": self.temperature}
        profile = self.profile(timer, prm_spans)
        self.journal(record | (val.to_dict("val_") if val else {}) | {"seconds": timer.seconds, "profile": profile})
        self.run_dir.write_json("pre_evolved_test.json", pre_test.to_dict() if pre_test else None)
        self.checkpoints.add_state("pre_evolved", self.state(0))

    def sampling(self, iteration: int) -> SamplingParams:
        """The rollout sampling settings of one iteration, at the current temperature."""
        r = self.cfg.rollout
        seed = derive_seed(self.cfg.run.seed, "rollout", iteration)
        return SamplingParams(r.samples_per_prompt, self.temperature, r.top_p, r.top_k, r.max_new_tokens, seed)

    def temperature_due(self, iteration: int) -> bool:
        """M-STaR adapts the temperature every temperature.every iterations, starting before the first."""
        t = self.cfg.temperature
        return t.auto and (iteration - 1) % t.every == 0

    def adapt_temperature(self, iteration: int) -> None:
        """Measure the validation curve over the temperature grid and continue at its best point."""
        t, start = self.cfg.temperature, time.perf_counter()
        prompts = self.data.validation[: t.prompts]
        base = self.sampling(iteration).with_(seed=derive_seed(self.cfg.run.seed, "temperature_search"))
        search = search_temperature(
            self.rollout, self.prm, prompts, base, t.grid, t.criterion, self.cfg.prm.aggregation
        )
        log.info("temperature %.2f -> %.2f (by %s)", self.temperature, search.chosen, t.criterion.value)
        self.temperature = search.chosen
        search_record = search.to_dict() | {"iteration": iteration}
        seconds = round(time.perf_counter() - start, 3)
        record = {"iteration": iteration, "temperature_search": search_record, "seconds": seconds}
        self.run_dir.append_metrics(record)
        self.monitor.record(record)

    def mixing_in(self, iteration: int) -> bool:
        """Whether unlabeled prompts join this iteration (after the T_mixin share of the iterations)."""
        lp = self.cfg.loop
        return lp.mixin_unlabeled and self.unlabeled is not None and iteration > lp.mixin_after * lp.iterations

    def pseudo_labeled(self, iteration: int, params: SamplingParams) -> tuple[list[PromptRollouts], float | None]:
        """The next interval of unlabeled prompts, sampled, scored and relabelled by PRM-weighted voting."""
        # Seeds of their own: unlabeled prompt ids may repeat labeled ones (row numbers of another file)
        params = params.with_(seed=derive_seed(self.cfg.run.seed, "pseudo_label_rollout", iteration))
        rollouts = self.rollout.generate(self.unlabeled.next_interval(), params)
        self.prm.score(rollouts)
        relabelled, agreement = apply_pseudo_labels(rollouts, self.cfg.prm.aggregation)
        mark_correct(relabelled)
        return relabelled, agreement

    def select(self, rollouts: Sequence[PromptRollouts], purpose: str, iteration: int) -> list[TrainExample]:
        """The training examples the selection rule keeps; its random draws derive from the purpose and iteration."""
        return select_training_examples(rollouts, self.selection, derive_seed(self.cfg.run.seed, purpose, iteration))

    def pairwise(self, rollouts: Sequence[PromptRollouts], iteration: int) -> PairwiseAccuracy | None:
        """The PRM's pairwise accuracy on the iteration's scored samples (None without ground truth)."""
        seed = derive_seed(self.cfg.run.seed, "pairwise_bootstrap", iteration)
        return prm_pairwise_accuracy(rollouts, self.cfg.prm.aggregation, seed)

    def train(self, examples: Sequence[TrainExample], iteration: int) -> TrainResult:
        """Train on the selected examples, restarting optimizer or weights as the mode says; the engines sleep
        throughout (a new stage allocates optimizer state, ReST-EM gathers the base weights)."""
        mode = self.cfg.loop.mode
        with self.rollout.asleep():
            if mode != TrainingMode.CONTINUOUS:
                self.trainers.start_stage(self.optim, reset_to_base=mode == TrainingMode.REST_EM)
                self.stage_started = True  # checkpoints now carry the trainers' state, weights included
            if not examples:
                return TrainResult(0, 0)
            seed = derive_seed(self.cfg.run.seed, "train", iteration)
            stats = self.trainers.train(examples, self.cfg.train.epochs_per_iteration, seed)
        return TrainResult.of(len(examples), stats)

    def train_phase(self, examples: Sequence[TrainExample], iteration: int) -> TrainResult:
        """`train`; a dead trainer rank has the group rebuilt from the last checkpoint and training run again."""
        return retry_on_dead_trainers(
            lambda: self.train(examples, iteration), self.dead_trainers, lambda d, e: self.rebuild(d, iteration, e)
        )

    def sync_phase(
        self, examples: Sequence[TrainExample], iteration: int, train: TrainResult
    ) -> tuple[SyncStats, TrainResult]:
        """The weight sync, and the iteration's training result; a trainer rank dead by now has the group rebuilt
        and this iteration's training redone (its result replaces `train`) before the sync is tried again."""
        trained = [train]

        def rebuild_and_retrain(dead: list[str], err: Exception) -> None:
            self.rebuild(dead, iteration, err)
            trained.append(self.train_phase(examples, iteration))

        return retry_on_dead_trainers(self.weights.sync, self.dead_trainers, rebuild_and_retrain), trained[-1]

    def evaluate_validation(self, iteration: int, params: SamplingParams) -> EvalResult | None:
        """The dynamics on the validation prompts when due (None otherwise)."""
        if not validation_due(self.cfg, iteration):
            return None
        return validation_result(self.cfg, self.rollout, self.prm, self.data.validation, params)

    def evaluate_test(self, label: str) -> EvalResult | None:
        """The test prompts under one protocol before and after, when loop.eval_test is set."""
        if not self.cfg.loop.eval_test:
            return None
        return held_out_result(self.cfg, self.rollout, self.prm, self.data.test, self.sampling(0), self.run_dir, label)

    def evaluate_benchmarks(self, stage: RunStage) -> None:
        """Greedy accuracy on eval.benchmarks at this stage (eval.run_stages) over the rollout workers."""
        if self.data.benchmarks and stage in self.cfg.eval.run_stages:
            evaluate_run_stage(self.cfg, self.rollout, self.data.benchmarks, self.run_dir.path, stage.value)

    def profile(self, timer: PhaseTimer, spans: Sequence[BusySpan] = ()) -> dict:
        """Where a record's time went: each phase's compute per actor, bytes moved, orchestration overhead."""
        groups = (self.rollout, self.trainers, self.prm)
        spans = [*spans, *(s for group in groups if group is not None for s in group.drain_busy())]
        return record_profile(timer.windows, timer.opened, spans)

    def journal(self, record: dict, prompts: Sequence | None = None) -> None:
        """A record to metrics.jsonl and the monitor; an iteration's prompt ids to prompts.jsonl; the plot."""
        self.run_dir.append_metrics(record)
        if prompts is not None:
            self.run_dir.append_record(
                "prompts.jsonl", {"iteration": record["iteration"], "ids": [p.id for p in prompts]}
            )
            plot_dynamics(self.run_dir.read_metrics(), self.run_dir.path / "dynamics.png")
        self.monitor.record(record)

    # --- state, resume and recovery ---

    def state(self, iteration: int) -> DriverState:
        """What a checkpoint after `iteration` must hold to resume exactly there."""
        return DriverState(
            iteration=iteration,
            weights_version=self.weights.version,
            total_train_steps=self.total_train_steps,
            temperature=self.temperature,
            cursor=self.cursor.state(),
            unlabeled_cursor=self.unlabeled.state() if self.unlabeled else None,
            stage_started=self.stage_started,
            recoveries=self.recoveries(),
            best=self.checkpoints.best,
        )

    def restore(self, checkpoint: Path, state: DriverState) -> None:
        """Put the loop back where `checkpoint` left it and give every engine its weights."""
        self.cursor.restore(state.cursor)
        if self.unlabeled is not None and state.unlabeled_cursor is not None:
            self.unlabeled.restore(state.unlabeled_cursor)
        self.temperature, self.total_train_steps = state.temperature, state.total_train_steps
        self.stage_started, self.checkpoints.best = state.stage_started, state.best
        self.rebuilds.count = state.recoveries.get("trainer_rebuilds", 0)
        self.rollout.restarts.update({k: v for k, v in state.recoveries.items() if k in self.rollout.names})
        self.run_dir.restore_journals(checkpoint)
        self.checkpoints.restore_best_link()
        self.weights.sync(version=state.weights_version)  # the engines hold the checkpoint's weights, its version
        if self.cfg.prm.enabled:
            self.prm = PRMGroup(self.cfg, self.cfg.prm.path or str(self.run_dir.path / "prm"), self.placement)
            self.prm.restarts.update({k: v for k, v in state.recoveries.items() if k in self.prm.names})
        log.info("resumed from %s after iteration %d (weights v%d)", checkpoint, state.iteration, self.weights.version)

    def rebuild(self, dead: list[str], iteration: int, err: Exception) -> None:
        """Replace the whole trainer group from the checkpoint of the previous iteration."""
        checkpoint, state = self.rebuilds.checkpoint_for(dead, iteration, err)
        self.trainers.shutdown()
        self.trainers = start_trainers(
            self.cfg, self.run_dir, self.placement, self.optim, checkpoint, state.stage_started
        )
        if self.stage_started and not state.stage_started:
            self.trainers.start_stage(self.optim)
        self.weights.use_trainers(self.trainers)

    def dead_trainers(self) -> list[str]:
        """Names of the trainer ranks that are dead."""
        return [self.trainers.names[i] for i in dead_actors(self.trainers.ranks)]

    def recoveries(self) -> dict[str, int]:
        """Actor restarts by name and trainer group rebuilds, since the run began."""
        counts = dict(self.rollout.restarts) | (dict(self.prm.restarts) if self.prm else {})
        return counts | ({"trainer_rebuilds": self.rebuilds.count} if self.rebuilds.count else {})

    def shutdown(self) -> None:
        """Stop every actor of the run now (rather than when the last handle is collected)."""
        self.weights.close()
        for group in (self.rollout, self.trainers, self.prm):
            if group is not None:
                group.shutdown()
        self.monitor.close()
