"""Evaluation on a prompt set: greedy accuracy and Pass@K with the current rollout weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from mstar_ray.metrics import first_sample_accuracy, mark_correct, pass_at_k, sample_accuracy
from mstar_ray.records import Prompt, PromptRollouts
from mstar_ray.rollout.sampling import SamplingParams


class Generator(Protocol):
    """Anything that samples responses: a rollout group, or an engine in tests."""

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[PromptRollouts]: ...


@dataclass(frozen=True)
class EvalResult:
    """Accuracy figures of one evaluation."""

    prompts: int
    greedy_accuracy: float
    pass_at_k: float  # share of prompts with a correct answer among K samples
    k: int
    sample_accuracy: float  # share of the K samples that are correct
    temperature: float

    @property
    def headroom(self) -> float:
        """Pass@K minus greedy accuracy."""
        return self.pass_at_k - self.greedy_accuracy

    def to_dict(self, prefix: str = "") -> dict[str, float]:
        out = asdict(self) | {"pass_at_k_minus_greedy": self.headroom}
        return {f"{prefix}{k}": v for k, v in out.items()}


def evaluate(rollout: Generator, prompts: Sequence[Prompt], sampling: SamplingParams) -> EvalResult:
    """Greedy decoding for accuracy, then `sampling.n` samples per prompt for Pass@K."""
    greedy = rollout.generate(prompts, sampling.with_(n=1, temperature=0.0))
    sampled = rollout.generate(prompts, sampling)
    mark_correct(greedy)
    mark_correct(sampled)
    return EvalResult(
        prompts=len(prompts),
        greedy_accuracy=first_sample_accuracy(greedy),
        pass_at_k=pass_at_k(sampled),
        k=sampling.n,
        sample_accuracy=sample_accuracy(sampled),
        temperature=sampling.temperature,
    )
