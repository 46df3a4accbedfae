"""Evaluation on a prompt set with the current rollout weights: the paper's dynamics figures.

Greedy accuracy, Pass@K, Pass@K minus greedy, and with a PRM Reward-Pass@2 (a correct response among the PRM's
top 2 of K samples), beside the random-2 baseline it should beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from mstar_ray.config import ScoreAggregation
from mstar_ray.core.records import Prompt, PromptRollouts
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.eval.metrics import (
    first_sample_accuracy,
    mark_correct,
    pass_at_k,
    random_pass_at_k,
    reward_pass_at_k,
    sample_accuracy,
)


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

    @property
    def headroom(self) -> float:
        """Pass@K minus greedy accuracy."""
        return self.pass_at_k - self.greedy_accuracy

    def to_dict(self, prefix: str = "") -> dict[str, float]:
        out = asdict(self) | {"pass_at_k_minus_greedy": self.headroom}
        return {f"{prefix}{k}": v for k, v in out.items()}


def sampled_figures(
    sampled: Sequence[PromptRollouts], scorer: Scorer | None, aggregation: ScoreAggregation
) -> dict[str, float | None]:
    """Pass@K, sample accuracy, random-2 and (scoring every sample) Reward-Pass@2 of verified samples."""
    rp2 = None
    if scorer is not None:
        scorer.score(sampled)
        rp2 = reward_pass_at_k(sampled, aggregation, 2)
    return {
        "pass_at_k": pass_at_k(sampled),
        "sample_accuracy": sample_accuracy(sampled),
        "random_pass_at_2": random_pass_at_k(sampled, 2),
        "reward_pass_at_2": rp2,
    }


def evaluate(
    rollout: Generator,
    prompts: Sequence[Prompt],
    sampling: SamplingParams,
    scorer: Scorer | None = None,
    aggregation: ScoreAggregation = ScoreAggregation.MIN,
) -> EvalResult:
    """Greedy decoding for accuracy, then `sampling.n` samples per prompt for Pass@K (and Reward-Pass@2)."""
    greedy = rollout.generate(prompts, sampling.with_(n=1, temperature=0.0))
    sampled = rollout.generate(prompts, sampling)
    mark_correct(greedy)
    mark_correct(sampled)
    return EvalResult(
        prompts=len(prompts),
        greedy_accuracy=first_sample_accuracy(greedy),
        k=sampling.n,
        temperature=sampling.temperature,
        **sampled_figures(sampled, scorer, aggregation),
    )
