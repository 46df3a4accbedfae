"""A run's prompt splits, loaded with skip counts, and the cursor that walks the labeled prompts."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from mstar_ray.config import ORACLE_RULES, ConfigError, MStarConfig
from mstar_ray.core.records import Prompt
from mstar_ray.core.seeds import derive_seed
from mstar_ray.data.formats import BadRowError, load_prompts
from mstar_ray.eval.benchmarks.runner import LoadedBenchmark, benchmark_cache, load_benchmarks
from mstar_ray.eval.process import has_truth

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
    benchmarks: dict[str, LoadedBenchmark] = field(default_factory=dict)  # evaluated at eval.run_stages


def load_datasets(cfg: MStarConfig, benchmarks: bool = False) -> Datasets:
    """Load every configured split, counting what was skipped and why; with `benchmarks`, also the benchmarks a
    run evaluates (eval.benchmarks, when eval.run_stages is not empty)."""
    d = cfg.data
    loaded, reports = {}, {}
    for split in ("labeled", "validation", "test", "seed_cot", "unlabeled"):
        path = getattr(d, split)
        args = (d.image_root, d.on_bad_row, d.check_images, split != "unlabeled", d.columns, d.image_cache)
        try:
            prompts, report = load_prompts(path, *args) if path else ([], None)
        except (BadRowError, FileNotFoundError, ValueError) as err:  # say which key named the unusable file
            kind = type(err) if type(err) in (BadRowError, FileNotFoundError) else ValueError
            raise kind(f"data.{split}: {err}") from err
        if path and not prompts:
            raise ValueError(f"data.{split}: no usable rows in {path} (skipped: {dict(report.skipped)})")
        loaded[split], reports[split] = prompts, report.to_dict() if report else None
        if report and report.skipped:
            log.warning("data.%s: skipped %s (first ids: %s)", split, dict(report.skipped), report.examples)
        if report and report.image_cache:
            log.info("data.%s: embedded images written to %s", split, report.image_cache)
    if cfg.seed_sft.enabled and not any(p.reference for p in loaded["seed_cot"]):
        raise ValueError(f"data.seed_cot: no row of {d.seed_cot} has a '# Answer' chain of thought to train on")
    check_ground_truth(cfg, loaded)
    loaded["validation"] = loaded["validation"][: d.max_validation]
    e = cfg.eval
    if benchmarks and e.benchmarks and e.run_stages:
        loaded["benchmarks"] = load_benchmarks(e.benchmarks, benchmark_cache(cfg), d.on_bad_row, e.limit)
        reports |= {f"benchmark:{name}": bench.report.to_dict() for name, bench in loaded["benchmarks"].items()}
    return Datasets(**loaded, reports=reports)


def check_ground_truth(cfg: MStarConfig, loaded: dict[str, list[Prompt]]) -> None:
    """The oracle selection ranks by the process checker: every prompt it selects from needs ground truth."""
    if cfg.loop.selection not in ORACLE_RULES:
        return
    for split in ("labeled", "unlabeled") if cfg.loop.mixin_unlabeled else ("labeled",):
        lacking = [p.id for p in loaded[split] if not has_truth(p.truth)]
        if lacking:
            raise ConfigError(
                f"loop.selection: {cfg.loop.selection.value} ranks by the process checker, which needs ground truth "
                f"(a 'truth' column as the synthetic task writes); {len(lacking)} of {len(loaded[split])} "
                f"data.{split} prompts have none (first: {lacking[0]}). Choose another rule for this data"
            )


class PromptCursor:
    """Walks the labeled prompts in shuffled order, one interval per iteration, reshuffling each epoch."""

    def __init__(self, prompts: Sequence[Prompt], interval: float, seed: int) -> None:
        self.prompts, self.seed = list(prompts), seed
        self.per_iteration = max(1, round(interval * len(prompts)))
        self.epoch, self.position = 0, 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[Prompt]:
        order = list(self.prompts)
        random.Random(derive_seed(self.seed, "epoch", epoch)).shuffle(order)
        return order

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def restore(self, state: dict[str, int]) -> None:
        """Continue from a saved position (same prompts, interval and seed)."""
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._shuffled(self.epoch)

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
