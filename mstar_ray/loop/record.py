"""The typed record of one iteration, built from the results of its phases; `to_json()` is its metrics.jsonl line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mstar_ray.core.records import PromptRollouts, TrainExample
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.eval.metrics import mean_response_tokens, pass_at_k, sample_accuracy
from mstar_ray.eval.process_metrics import Advantage, PairwiseAccuracy, choice_rate, flaw_rate, selection_quality
from mstar_ray.eval.validation import EvalResult
from mstar_ray.sync.coordinator import SyncStats
from mstar_ray.training.sft import TrainStats, mean_loss


@dataclass(frozen=True)
class RolloutStats:
    """The sampled responses of the iteration's labeled prompts, and how many were selected for training."""

    prompts: int
    samples: int
    rollout_weights_version: int  # the oldest weights version any sample came from
    temperature: float
    sample_accuracy: float  # share of samples verified correct
    prompts_with_correct: float  # Pass@K of the iteration's prompts
    mean_response_tokens: float
    selected: int  # training examples taken from these prompts
    choice_rate: float  # share of prompts with at least 3 distinct correct samples
    # Where the prompts have ground truth (else None): correct samples with a false step, and how process-correct
    # the selected responses are beside random-k's expectation and the oracle's ceiling on the same pool
    flaw_rate: float | None = None
    selected_process_correct: float | None = None
    random_k_process_correct: float | None = None
    oracle_process_correct: float | None = None
    selected_advantage: float | None = None  # selected_process_correct beyond random draws of as many, per response
    selected_advantage_low: float | None = None  # its 95% interval, prompts as units
    selected_advantage_high: float | None = None
    selected_advantage_terms: list[float] | None = None  # sums over prompts that let iterations be pooled

    @classmethod
    def of(
        cls, rollouts: Sequence[PromptRollouts], examples: Sequence[TrainExample], params: SamplingParams, k: int
    ) -> RolloutStats:
        quality = selection_quality(rollouts, examples, k)
        return cls(
            prompts=len(rollouts),
            samples=sum(len(g.samples) for g in rollouts),
            rollout_weights_version=min(s.weights_version for g in rollouts for s in g.samples),
            temperature=params.temperature,
            sample_accuracy=sample_accuracy(rollouts),
            prompts_with_correct=pass_at_k(rollouts),
            mean_response_tokens=mean_response_tokens(rollouts),
            selected=len(examples),
            choice_rate=choice_rate(rollouts),
            flaw_rate=flaw_rate(rollouts),
            **(quality.to_json() if quality else {}),
        )


@dataclass(frozen=True)
class PseudoLabelStats:
    """Unlabeled prompts mixed in with PRM-vote pseudo-labels (the paper's prompt variation)."""

    prompts: int
    accuracy: float | None  # share of pseudo-labels equal to the withheld answers, where the data has them
    selected: int  # training examples taken from these prompts

    def to_json(self) -> dict[str, Any]:
        return {
            "pseudo_labeled_prompts": self.prompts,
            "pseudo_label_accuracy": self.accuracy,
            "pseudo_labeled_selected": self.selected,
        }


@dataclass(frozen=True)
class TrainResult:
    """What one iteration's training did (zero steps when nothing was selected)."""

    examples: int
    steps: int
    steps_in_stage: int | None = (
        None  # optimizer steps since the stage began: grows across iterations in continuous mode
    )
    learning_rate: float | None = None
    loss: float | None = None  # mean over ranks
    tokens: int | None = None  # response tokens trained on, all ranks

    @classmethod
    def of(cls, examples: int, stats: Sequence[TrainStats]) -> TrainResult:
        return cls(
            examples=examples,
            steps=stats[0].optimizer_steps,
            steps_in_stage=stats[0].steps_in_stage,
            learning_rate=stats[0].learning_rate,
            loss=mean_loss(stats),
            tokens=sum(s.response_tokens for s in stats),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"train_examples": self.examples, "train_steps": self.steps}
        if self.loss is not None:
            out |= {
                "optimizer_steps_in_stage": self.steps_in_stage,
                "learning_rate": self.learning_rate,
                "train_loss": self.loss,
                "train_tokens": self.tokens,
            }
        return out


@dataclass
class IterationRecord:
    """One self-evolving iteration, phase by phase."""

    iteration: int
    epoch: int  # passes over the labeled prompts begun so far
    weights_version: int  # held by the engines after this iteration's sync
    rollout: RolloutStats
    train: TrainResult
    sync: SyncStats
    total_train_steps: int
    seconds: dict[str, float]  # wall seconds per phase
    scored: int | None = None  # responses the PRM scored (None: no PRM selection)
    pseudo_labels: PseudoLabelStats | None = None
    validation: EvalResult | None = None  # None when this iteration is not evaluated
    recoveries: dict[str, int] = field(default_factory=dict)
    pairwise: PairwiseAccuracy | None = None  # the PRM on the iteration's scored samples, with ground truth

    def to_json(self) -> dict[str, Any]:
        """The metrics.jsonl line: flat keys, validation figures prefixed `val_`."""
        out: dict[str, Any] = {
            "iteration": self.iteration,
            "epoch": self.epoch,
            "weights_version": self.weights_version,
        }
        out |= asdict(self.rollout)
        if self.scored is not None:
            out["scored"] = self.scored
        if self.pairwise is not None:
            out |= self.pairwise.to_json()
        if self.pseudo_labels is not None:
            out |= self.pseudo_labels.to_json()
        out |= self.train.to_json()
        out |= {
            "sync_bytes": self.sync.bytes,
            "sync_gb_per_s": round(self.sync.gb_per_s, 3),
            "sync_full": self.sync.full,
        }
        out |= {"total_train_steps": self.total_train_steps, "seconds": self.seconds}
        out |= self.validation.to_dict("val_") if self.validation else {}
        return out | {"recoveries": self.recoveries}


SELECTION_KEYS = ("selected_process_correct", "random_k_process_correct", "oracle_process_correct")


def selected_data_quality(records: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """How process-correct the whole run's selected data was, beside random-k and the oracle: each iteration's
    share weighted by what it selected (None without ground truth)."""
    rows = [r for r in records if r.get("selected_process_correct") is not None and r.get("selected")]
    total = sum(r["selected"] for r in rows)
    if not total:
        return None
    out = {key: sum(r[key] * r["selected"] for r in rows) / total for key in SELECTION_KEYS} | {"selected": total}
    pooled = sum(
        (Advantage(*r["selected_advantage_terms"]) for r in rows if r.get("selected_advantage_terms")), Advantage()
    )
    if pooled.w:
        out |= {k: v for k, v in pooled.to_json().items() if k != "selected_advantage_terms"}
    return out
