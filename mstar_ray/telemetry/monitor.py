"""Phase timings and per-iteration figures, and where they go besides metrics.jsonl: Ray's Prometheus endpoint
(ray.util.metrics), TensorBoard, Weights & Biases or MLflow when asked for, and a progress bar in the driver's log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mstar_ray.config import MStarConfig

log = logging.getLogger("mstar")

# Gauges set from each iteration record: metric name -> (record key, description)
GAUGES = {
    "mstar_iteration": ("iteration", "Last completed M-STaR iteration"),
    "mstar_weights_version": ("weights_version", "Weights version held by the rollout engines"),
    "mstar_temperature": ("temperature", "Sampling temperature of the last iteration"),
    "mstar_sample_accuracy": ("sample_accuracy", "Share of sampled responses verified correct"),
    "mstar_selected_examples": ("selected", "Responses selected for training in the last iteration"),
    "mstar_train_loss": ("train_loss", "Mean training loss of the last iteration"),
    "mstar_val_greedy_accuracy": ("val_greedy_accuracy", "Validation greedy accuracy"),
    "mstar_val_pass_at_k": ("val_pass_at_k", "Validation Pass@K"),
    "mstar_val_reward_pass_at_2": ("val_reward_pass_at_2", "Validation Reward-Pass@2 (PRM top 2)"),
    "mstar_val_strict_accuracy": ("val_strict_accuracy", "Validation strict accuracy (answer right, every step true)"),
    "mstar_selected_process_correct": ("selected_process_correct", "Share of the selected responses process-correct"),
    "mstar_sync_gb_per_s": ("sync_gb_per_s", "Weight sync throughput"),
}


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The record's numbers, nested keys joined with '/'; anything else is left out."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def phase_rates(record: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """(samples or examples per second, tokens per second) of the rollout and train phases of an iteration."""
    seconds, rates = record.get("seconds", {}), {}
    if seconds.get("rollout") and "samples" in record:
        tokens = record["samples"] * record.get("mean_response_tokens", 0.0)
        rates["rollout"] = (record["samples"] / seconds["rollout"], tokens / seconds["rollout"])
    if seconds.get("train") and record.get("train_examples"):
        rates["train"] = (record["train_examples"] / seconds["train"], record["train_tokens"] / seconds["train"])
    return rates


class RayMetrics:
    """The run's figures as ray.util.metrics gauges and counters, tagged with the run name."""

    def __init__(self, run_name: str) -> None:
        from ray.util.metrics import Counter, Gauge

        self.tags = {"run": run_name}
        tag, phase = ("run",), ("run", "phase")
        self.gauges = {name: Gauge(name, description=text, tag_keys=tag) for name, (_, text) in GAUGES.items()}
        self.phase_seconds = Gauge("mstar_phase_seconds", description="Seconds of each phase", tag_keys=phase)
        per_s = "Samples (rollout) or examples (train) per second"
        self.items_per_s = Gauge("mstar_phase_samples_per_second", description=per_s, tag_keys=phase)
        self.tokens_per_s = Gauge("mstar_phase_tokens_per_second", description="Tokens per second", tag_keys=phase)
        self.recoveries = Counter("mstar_recoveries", description="Actor restarts and trainer rebuilds", tag_keys=tag)
        self.counted = 0

    def record(self, record: dict[str, Any]) -> None:
        for name, (key, _) in GAUGES.items():
            if isinstance(record.get(key), (int, float)):
                self.gauges[name].set(float(record[key]), tags=self.tags)
        for phase, seconds in record.get("seconds", {}).items():
            self.phase_seconds.set(seconds, tags=self.tags | {"phase": phase})
        for phase, (items, tokens) in phase_rates(record).items():
            self.items_per_s.set(items, tags=self.tags | {"phase": phase})
            self.tokens_per_s.set(tokens, tags=self.tags | {"phase": phase})
        total = sum(record.get("recoveries", {}).values())
        if total > self.counted:
            self.recoveries.inc(total - self.counted, tags=self.tags)
            self.counted = total


class Monitor:
    """Sends every metrics record to the configured sinks; `iterations` shows the loop's progress bar."""

    def __init__(self, cfg: MStarConfig, run_path: Path, first_step: int = 0) -> None:
        """`first_step`: the iteration a resumed run continues with; TensorBoard drops what a stopped run wrote from
        there on, and W&B continues the same run."""
        m, self.progress = cfg.monitor, cfg.monitor.progress
        self.ray = RayMetrics(cfg.run.name) if m.ray_metrics else None
        self.sinks: list[Callable[[dict[str, float], int], None]] = []
        self.closers: list[Callable[[], None]] = []
        self.iterations_total = cfg.loop.iterations
        if m.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_path / "tensorboard"), purge_step=first_step or None)
            self.sinks.append(lambda values, step: [writer.add_scalar(k, v, step) for k, v in values.items()])
            self.closers.append(writer.close)
        if m.wandb_project:
            import wandb

            id_file = run_path / "wandb_run_id"
            if not id_file.exists():
                id_file.write_text(wandb.util.generate_id())
            run_id = id_file.read_text().strip()
            wandb_run = wandb.init(
                project=m.wandb_project, name=cfg.run.name, id=run_id, dir=str(run_path), resume="allow"
            )
            self.sinks.append(lambda values, step: wandb_run.log(values, step=step))
            self.closers.append(wandb_run.finish)
        if m.mlflow_experiment:
            import mlflow

            mlflow.set_experiment(m.mlflow_experiment)
            mlflow.start_run(run_name=cfg.run.name)
            self.sinks.append(lambda values, step: mlflow.log_metrics(_mlflow_safe(values), step=step))
            self.closers.append(mlflow.end_run)

    def record(self, record: dict[str, Any]) -> None:
        """One metrics.jsonl record (an iteration, the pre-evolution, a temperature search)."""
        values, step = flatten(record), int(record.get("iteration", 0))
        for sink in self.sinks:
            sink(values, step)
        if self.ray is not None and "temperature_search" not in record:
            self.ray.record(record)

    @contextmanager
    def iterations(self, done: int) -> Iterator[Callable[[dict], None]]:
        """A progress bar over the loop's iterations; call the yielded function with each iteration's record."""
        if not self.progress:
            yield lambda record: None
            return
        from tqdm import tqdm

        bar = tqdm(total=self.iterations_total, initial=done, desc="M-STaR iterations", unit="it", mininterval=0)

        def advance(record: dict) -> None:
            shown = {"v": record.get("weights_version"), "acc": round(record.get("sample_accuracy", 0.0), 3)}
            if "val_greedy_accuracy" in record:
                shown["val"] = round(record["val_greedy_accuracy"], 3)
            bar.set_postfix(shown, refresh=False)
            bar.update(1)

        try:
            yield advance
        finally:
            bar.close()

    def close(self) -> None:
        """Flush and close the sinks (once)."""
        closers, self.closers, self.sinks = self.closers, [], []
        for close in closers:
            close()


def _mlflow_safe(values: dict[str, float]) -> dict[str, float]:
    # MLflow metric names allow letters, digits, _ - . / and space; '@' appears in none of ours but guard anyway
    return {k.replace("@", "_at_"): v for k, v in values.items()}


class PhaseTimer:
    """Wall seconds of each named phase of an iteration, and each phase's wall-clock window (for the profile)."""

    def __init__(self, opened: float | None = None) -> None:
        """`opened`: when the record's time began (time.time()), if before the timer was made."""
        self.seconds: dict[str, float] = {}
        self.windows: dict[str, tuple[float, float]] = {}
        self.opened = opened if opened is not None else time.time()

    def mark(self, phase: str, since: float) -> None:
        """Time a phase that began at `since` (time.time()) and ends now."""
        now = time.time()
        self.seconds[phase] = round(now - since, 3)
        self.windows[phase] = (since, now)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        if phase in self.seconds:
            raise ValueError(f"phase {phase!r} timed twice in one record")
        start, opened = time.perf_counter(), time.time()
        try:
            yield
        finally:
            self.seconds[phase] = round(time.perf_counter() - start, 3)
            self.windows[phase] = (opened, time.time())


def progress_line(record: dict) -> str:
    """One readable log line for an iteration."""
    line = (
        f"iter {record['iteration']} v{record['weights_version']}: {record['prompts']} prompts, "
        f"sample acc {record['sample_accuracy']:.3f}, selected {record['selected']}, "
        f"loss {record.get('train_loss', float('nan')):.3f}"
    )
    if record.get("selected_process_correct") is not None:
        line += f" ({record['selected_process_correct']:.2f} sound, random-k {record['random_k_process_correct']:.2f})"
    if "val_greedy_accuracy" in record:
        line += f", val greedy {record['val_greedy_accuracy']:.3f} Pass@{record['val_k']} {record['val_pass_at_k']:.3f}"
        if record.get("val_strict_accuracy") is not None:
            line += f" strict {record['val_strict_accuracy']:.3f}"
        if record.get("val_reward_pass_at_2") is not None:
            line += (
                f" Reward-Pass@2 {record['val_reward_pass_at_2']:.3f} (random-2 {record['val_random_pass_at_2']:.3f})"
            )
    seconds = record["seconds"]
    phases = ", ".join(f"{phase} {s:.0f}" for phase, s in seconds.items() if s >= 0.5)
    return line + f" | {sum(seconds.values()):.0f} s ({phases})"
