"""Automatic temperature (M-STaR): pick the sampling temperature that maximises Reward-Pass@2 on validation.

Pass@K measures exploration and Reward-Pass@2 what the PRM can exploit of it; the paper re-tunes the temperature
every few iterations because both drift as the policy sharpens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from mstar_ray.config import ScoreAggregation, TemperatureCriterion
from mstar_ray.core.records import Prompt
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.eval.metrics import mark_correct
from mstar_ray.eval.validation import Generator, Scorer, sampled_figures


@dataclass(frozen=True)
class TemperaturePoint:
    """The validation figures at one temperature."""

    temperature: float
    pass_at_k: float
    sample_accuracy: float
    random_pass_at_2: float
    reward_pass_at_2: float | None
    choice_rate: float | None = None
    flaw_rate: float | None = None  # where the prompts have ground truth, as the pairwise figures below
    prm_pairwise_accuracy: float | None = None
    prm_pairs: int | None = None
    prm_pairwise_low: float | None = None
    prm_pairwise_high: float | None = None


@dataclass(frozen=True)
class TemperatureSearch:
    """A whole search: every point measured and the temperature chosen."""

    criterion: TemperatureCriterion
    chosen: float
    curve: list[TemperaturePoint]

    def to_dict(self) -> dict:
        return {"criterion": self.criterion.value, "chosen": self.chosen, "curve": [asdict(p) for p in self.curve]}


def search_temperature(
    rollout: Generator,
    scorer: Scorer | None,
    prompts: Sequence[Prompt],
    sampling: SamplingParams,
    grid: Sequence[float],
    criterion: TemperatureCriterion,
    aggregation: ScoreAggregation = ScoreAggregation.MIN,
) -> TemperatureSearch:
    """Sample K responses per prompt at every temperature of `grid`; choose the best by `criterion`.

    Ties go to the temperature closest to the current one (`sampling.temperature`), so a flat curve does not move it.
    """
    if criterion == TemperatureCriterion.REWARD_PASS_AT_2 and scorer is None:
        raise ValueError("choosing the temperature by Reward-Pass@2 needs a PRM")
    curve = []
    for temperature in grid:
        sampled = rollout.generate(prompts, sampling.with_(temperature=temperature))
        mark_correct(sampled)
        # Reward-Pass@2 is logged whenever a PRM runs
        figures = sampled_figures(sampled, scorer, aggregation, sampling.seed)
        curve.append(TemperaturePoint(temperature, **figures))
    best = max(curve, key=lambda p: (getattr(p, criterion.value), -abs(p.temperature - sampling.temperature)))
    return TemperatureSearch(criterion, best.temperature, curve)
