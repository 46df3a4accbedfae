"""Evaluation on a prompt set with the current rollout weights: the paper's dynamics figures.

Greedy accuracy, Pass@K, Pass@K minus greedy, and with a PRM Reward-Pass@2 (a correct response among the PRM's
top 2 of K samples), beside the random-2 baseline it should beat. Where the prompts have ground truth: strict
accuracy, the flaw rate, and the PRM's pairwise accuracy (eval/process_metrics.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from mstar_ray.config import ScoreAggregation
from mstar_ray.core.records import Prompt, PromptRollouts
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.core.seeds import derive_seed
from mstar_ray.eval.metrics import (
    first_sample_accuracy,
    mark_correct,
    pass_at_k,
    random_pass_at_k,
    reward_pass_at_k,
    sample_accuracy,
)
from mstar_ray.eval.process_metrics import choice_rate, flaw_rate, prm_pairwise_accuracy, strict_accuracy


class Generator(Protocol):
    """Anything that samples responses: a rollout group, or an engine in tests."""

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, prefixes: Sequence[str] | None = None
    ) -> list[PromptRollouts]: ...


class Scorer(Protocol):
    """Anything that sets PRM `step_scores` on samples: a PRM group."""

    def score(self, rollouts: Sequence[PromptRollouts], only_correct: bool = False) -> int: ...


@dataclass(frozen=True)
class EvalResult:
    """Accuracy figures of one evaluation."""

    prompts: int
    greedy_accuracy: float
    pass_at_k: float  # share of prompts with a correct answer among K samples
    k: int
    sample_accuracy: float  # share of the K samples that are correct
    temperature: float
    random_pass_at_2: float  # expected share of prompts with a correct response among 2 random samples
    reward_pass_at_2: float | None = None  # share with a correct response among the PRM's top 2 (None: no PRM)
    choice_rate: float | None = None  # share of prompts with at least 3 distinct correct samples
    # Where the prompts have ground truth (else None): greedy answer right and every step true
    strict_accuracy: float | None = None
    flaw_rate: float | None = None  # share of correct samples with a false step
    prm_pairwise_accuracy: float | None = None  # a process-correct sample outscoring a flawed-correct one
    prm_pairs: int | None = None
    prm_pairwise_low: float | None = None  # its 95% bootstrap interval over prompts
    prm_pairwise_high: float | None = None

    @property
    def headroom(self) -> float:
        """Pass@K minus greedy accuracy."""
        return self.pass_at_k - self.greedy_accuracy

    def to_dict(self, prefix: str = "") -> dict[str, float]:
        out = asdict(self) | {"pass_at_k_minus_greedy": self.headroom}
        return {f"{prefix}{k}": v for k, v in out.items()}


def sampled_figures(
    sampled: Sequence[PromptRollouts], scorer: Scorer | None, aggregation: ScoreAggregation, seed: int = 0
) -> dict[str, float | None]:
    """Pass@K, sample accuracy, random-2, the choice and flaw rates and (scoring every sample) Reward-Pass@2 and
    the PRM's pairwise accuracy (its interval drawn from `seed`) of verified samples."""
    figures: dict[str, float | None] = {
        "pass_at_k": pass_at_k(sampled),
        "sample_accuracy": sample_accuracy(sampled),
        "random_pass_at_2": random_pass_at_k(sampled, 2),
        "choice_rate": choice_rate(sampled),
        "flaw_rate": flaw_rate(sampled),
        "reward_pass_at_2": None,
    }
    if scorer is not None:
        scorer.score(sampled)
        figures["reward_pass_at_2"] = reward_pass_at_k(sampled, aggregation, 2)
        pairwise = prm_pairwise_accuracy(sampled, aggregation, derive_seed(seed, "pairwise_bootstrap"))
        figures |= pairwise.to_json() if pairwise else {}
    return figures


def evaluate(
    rollout: Generator,
    prompts: Sequence[Prompt],
    sampling: SamplingParams,
    scorer: Scorer | None = None,
    aggregation: ScoreAggregation = ScoreAggregation.MIN,
) -> EvalResult:
    """Greedy decoding for accuracy, then `sampling.n` samples per prompt for Pass@K (and Reward-Pass@2)."""
    return evaluate_with_responses(rollout, prompts, sampling, scorer, aggregation)[0]


def evaluate_with_responses(
    rollout: Generator,
    prompts: Sequence[Prompt],
    sampling: SamplingParams,
    scorer: Scorer | None = None,
    aggregation: ScoreAggregation = ScoreAggregation.MIN,
) -> tuple[EvalResult, list[PromptRollouts]]:
    """`evaluate`, and the verified greedy responses it measured."""
    greedy = rollout.generate(prompts, sampling.with_(n=1, temperature=0.0))
    sampled = rollout.generate(prompts, sampling)
    mark_correct(greedy)
    mark_correct(sampled)
    result = EvalResult(
        prompts=len(prompts),
        greedy_accuracy=first_sample_accuracy(greedy),
        strict_accuracy=strict_accuracy(greedy),
        k=sampling.n,
        temperature=sampling.temperature,
        **sampled_figures(sampled, scorer, aggregation, sampling.seed),
    )
    return result, greedy
