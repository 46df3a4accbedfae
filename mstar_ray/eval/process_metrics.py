"""Figures of reasoning quality, from samples the verify phase marked with their process (`Sample.process`).

Only prompts with ground truth count (the synthetic task's); on data without it every figure is None. Strict
accuracy is answer accuracy that also demands a sound process; the flaw rate is how often a right answer stands on
a false step; the choice rate says whether the selection has anything to choose between. For training data the
process correctness of what a rule selected sits beside what random-k would select from the same pool (the exact
expectation) and what the oracle would (its ceiling). PRM pairwise accuracy asks, within a prompt, how often a
process-correct response outscores a flawed-correct one, with a bootstrap interval over prompts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mstar_ray.config import ScoreAggregation
from mstar_ray.core.records import PromptRollouts, Sample, TrainExample
from mstar_ray.core.steps import STEP_SEPARATOR, aggregate, split_steps
from mstar_ray.eval.process import Process, Verdict, check_response, check_step, has_truth, reasoning_steps

SOUND, FLAWED = Process.PROCESS_CORRECT.value, Process.FLAWED_CORRECT.value
CHOICE_MIN = 3  # distinct correct responses a prompt needs for a selection to have a choice


def _checked(rollouts: Sequence[PromptRollouts]) -> list[PromptRollouts]:
    return [g for g in rollouts if g.samples and g.samples[0].process is not None]


def distinct_correct(group: PromptRollouts) -> list[Sample]:
    """The prompt's correct samples, each distinct response text once (what the selection rules choose from)."""
    seen: set[str] = set()
    out = []
    for s in group.samples:
        if s.correct and s.text not in seen:
            seen.add(s.text)
            out.append(s)
    return out


def strict_accuracy(greedy: Sequence[PromptRollouts]) -> float | None:
    """Share of prompts whose first (greedy) response is process-correct."""
    checked = _checked(greedy)
    return sum(g.samples[0].process == SOUND for g in checked) / len(checked) if checked else None


def flaw_rate(sampled: Sequence[PromptRollouts]) -> float | None:
    """Share of correct-answer samples that are flawed-correct."""
    correct = [s for g in _checked(sampled) for s in g.samples if s.correct]
    return sum(s.process == FLAWED for s in correct) / len(correct) if correct else None


def choice_rate(sampled: Sequence[PromptRollouts]) -> float:
    """Share of prompts with at least CHOICE_MIN distinct correct responses."""
    return sum(len(distinct_correct(g)) >= CHOICE_MIN for g in sampled) / len(sampled) if sampled else 0.0


@dataclass(frozen=True)
class Advantage:
    """Process-correct responses a rule selected beyond what as many random draws from the same pools would give,
    per selected response. Kept as sums over prompts (n, a, w, aa, aw, ww: a = sound picked minus the random
    expectation, w = picked), so that iterations add up; the 95% interval treats prompts as independent units
    (the normal approximation of a ratio of sums)."""

    n: int = 0
    a: float = 0.0
    w: float = 0.0
    aa: float = 0.0
    aw: float = 0.0
    ww: float = 0.0

    def add(self, a: float, w: float) -> Advantage:
        return Advantage(self.n + 1, self.a + a, self.w + w, self.aa + a * a, self.aw + a * w, self.ww + w * w)

    def __add__(self, other: Advantage) -> Advantage:
        return Advantage(*(x + y for x, y in zip(self.terms(), other.terms(), strict=True)))

    def terms(self) -> tuple[float, ...]:
        return (self.n, self.a, self.w, self.aa, self.aw, self.ww)

    @property
    def value(self) -> float:
        return self.a / self.w

    def interval(self) -> tuple[float, float]:
        if self.n < 2:
            return (self.value, self.value)
        r = self.value
        residual = max(0.0, self.aa - 2 * r * self.aw + r * r * self.ww)
        half = 1.96 * math.sqrt(self.n / (self.n - 1) * residual) / self.w
        return (r - half, r + half)

    def to_json(self) -> dict[str, Any]:
        low, high = self.interval()
        return {
            "selected_advantage": self.value,
            "selected_advantage_low": low,
            "selected_advantage_high": high,
            "selected_advantage_terms": list(self.terms()),
        }


@dataclass(frozen=True)
class SelectionQuality:
    """Process correctness of the selected training data, beside random-k and the oracle on the same pool."""

    selected: float  # share of the selected responses that are process-correct
    random_k: float  # the same share expected of k responses drawn at random from each prompt's correct ones
    oracle: float  # the share if each prompt's k were its process-correct responses first
    advantage: Advantage  # selected beyond random draws of as many responses, with its interval

    def to_json(self) -> dict[str, Any]:
        return {
            "selected_process_correct": self.selected,
            "random_k_process_correct": self.random_k,
            "oracle_process_correct": self.oracle,
        } | self.advantage.to_json()


def selection_quality(
    rollouts: Sequence[PromptRollouts], examples: Sequence[TrainExample], k: int
) -> SelectionQuality | None:
    """How sound the selected responses of these rollouts are (None without ground truth or a selection)."""
    chosen: dict[str, set[str]] = {}
    for ex in examples:
        chosen.setdefault(ex.prompt.id, set()).add(ex.response)
    picked = sound_picked = drawn = expected = ceiling = 0.0
    advantage = Advantage()
    for g in _checked(rollouts):
        pool = distinct_correct(g)
        if not pool:
            continue
        sound = sum(s.process == SOUND for s in pool)
        draw = min(k, len(pool))
        drawn += draw
        expected += draw * sound / len(pool)
        ceiling += min(draw, sound)
        mine = [s for s in pool if s.text in chosen.get(g.prompt.id, set())]
        picked += len(mine)
        mine_sound = sum(s.process == SOUND for s in mine)
        sound_picked += mine_sound
        advantage = advantage.add(mine_sound - len(mine) * sound / len(pool), len(mine))
    if not drawn or not picked:
        return None
    return SelectionQuality(sound_picked / picked, expected / drawn, ceiling / drawn, advantage)


def pairwise_wins(group: PromptRollouts, aggregation: ScoreAggregation) -> tuple[float, int]:
    """(wins, pairs) of one prompt: process-correct against flawed-correct responses by PRM score (a tie half)."""
    pool = [s for s in distinct_correct(group) if s.step_scores]
    sound = [aggregate(s.step_scores, aggregation) for s in pool if s.process == SOUND]
    flawed = [aggregate(s.step_scores, aggregation) for s in pool if s.process == FLAWED]
    return ranked_pairs(sound, flawed)


def ranked_pairs(better: Sequence[float], worse: Sequence[float]) -> tuple[float, int]:
    """(wins, pairs): how many of the pairs (one value of `better`, one of `worse`) put the first higher, a tie
    counted half."""
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in better for b in worse)
    return wins, len(better) * len(worse)


def pooled_pairs(groups: Iterable[tuple[Sequence[float], Sequence[float]]]) -> tuple[float, int]:
    """`ranked_pairs` summed over groups (prompts), each comparing only its own values."""
    counts = [ranked_pairs(better, worse) for better, worse in groups]
    return sum(w for w, _ in counts), sum(n for _, n in counts)


@dataclass(frozen=True)
class PairwiseAccuracy:
    accuracy: float
    pairs: int
    low: float  # 95% bootstrap interval over prompts
    high: float

    def to_json(self, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}prm_pairwise_accuracy": self.accuracy,
            f"{prefix}prm_pairs": self.pairs,
            f"{prefix}prm_pairwise_low": self.low,
            f"{prefix}prm_pairwise_high": self.high,
        }


def prm_pairwise_accuracy(
    rollouts: Sequence[PromptRollouts], aggregation: ScoreAggregation, seed: int, resamples: int = 1000
) -> PairwiseAccuracy | None:
    """How often the PRM ranks a process-correct response above a flawed-correct one of the same prompt; the
    interval resamples prompts (drawn from `seed`). None when no prompt has both kinds scored."""
    per_prompt = [w for w in (pairwise_wins(g, aggregation) for g in _checked(rollouts)) if w[1]]
    if not per_prompt:
        return None
    wins, pairs = sum(w for w, _ in per_prompt), sum(n for _, n in per_prompt)
    rng, stats = random.Random(seed), []
    for _ in range(resamples):
        draw = [per_prompt[rng.randrange(len(per_prompt))] for _ in per_prompt]
        stats.append(sum(w for w, _ in draw) / sum(n for _, n in draw))
    stats.sort()
    low, high = stats[int(0.025 * resamples)], stats[int(0.975 * resamples) - 1]
    return PairwiseAccuracy(wins / pairs, pairs, low, high)


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(a positive scores above a negative), ties counted half: the area under the ROC curve."""
    if not positives or not negatives:
        return None
    ranked = sorted([(v, 1) for v in positives] + [(v, 0) for v in negatives])
    wins, i = 0.0, 0
    below = 0  # negatives strictly below the current value
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        pos = sum(label for _, label in ranked[i:j])
        neg = (j - i) - pos
        wins += pos * (below + 0.5 * neg)
        below += neg
        i = j
    return wins / (len(positives) * len(negatives))


def step_label_separation(labelled: Sequence[tuple[str, Sequence[str], Sequence[float], dict | None]]) -> dict | None:
    """How well step labels (or scores) separate true from false steps: (prompt id, steps, labels, truth) per
    response, the answer section ignored. `auc` pools every step; `within_prompt_auc` compares only a true and a
    false step at the same position of two responses to one prompt, which is what ranking a prompt's responses
    needs (prompt difficulty, which moves every label of a prompt together, drops out). None without ground truth."""
    true_labels, false_labels, checked = [], [], False
    positions: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
    for key, steps, labels, truth in labelled:
        if not has_truth(truth):
            continue
        checked = True
        for i, (step, label) in enumerate(zip(steps, labels, strict=True)):
            body = reasoning_steps(step)
            if not body:
                continue
            verdicts = {check_step(s, truth).verdict for s in body}
            if Verdict.FALSE not in verdicts and verdicts != {Verdict.TRUE}:
                continue  # unverifiable
            false = Verdict.FALSE in verdicts
            (false_labels if false else true_labels).append(label)
            positions.setdefault((key, i), ([], []))[false].append(label)
    if not checked:
        return None
    wins, pairs = pooled_pairs(positions.values())
    return {
        "true_steps": len(true_labels),
        "false_steps": len(false_labels),
        "mean_label_true": _mean(true_labels),
        "mean_label_false": _mean(false_labels),
        "auc": auc(true_labels, false_labels),
        "within_prompt_auc": wins / pairs if pairs else None,
        "within_prompt_pairs": pairs,
    }


def labels_as_prm(labelled: Sequence[tuple[str, Sequence[str], Sequence[float], dict | None, bool]]) -> dict | None:
    """PRM pairwise accuracy of the step labels themselves: within a prompt, how often a process-correct labelled
    response has a higher minimum step label than a flawed-correct one ((prompt id, steps, labels, truth, answer
    right) per response). A PRM that fitted its labels exactly would reach this, so it bounds what more PRM
    training can give. None when no prompt has both kinds."""
    groups: dict[str, tuple[list[float], list[float]]] = {}
    for key, steps, labels, truth, correct in labelled:
        if not has_truth(truth) or not correct or not labels:
            continue
        process = check_response(STEP_SEPARATOR.join(steps), truth, True).process.value
        if process in (SOUND, FLAWED):
            groups.setdefault(key, ([], []))[process == FLAWED].append(min(labels))
    wins, pairs = pooled_pairs(groups.values())
    return {"pairwise_accuracy": wins / pairs, "pairs": pairs} if pairs else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def marked_response(group: PromptRollouts) -> dict:
    """The first response of a prompt as a report shows it: each step (the PRM's steps, the answer section with the
    last) with its verdict where the prompt has ground truth and its PRM score where it was scored."""
    sample, truth = group.samples[0], group.prompt.truth
    steps = split_steps(sample.text)
    scores = sample.step_scores if len(sample.step_scores) == len(steps) else [None] * len(steps)
    marked = []
    for step, score in zip(steps, scores, strict=True):
        verdicts = {check_step(s, truth).verdict for s in reasoning_steps(step)} if has_truth(truth) else set()
        verdict = Verdict.FALSE if Verdict.FALSE in verdicts else Verdict.TRUE if verdicts == {Verdict.TRUE} else None
        marked.append({"text": step, "verdict": verdict.value if verdict else None, "score": score})
    p = group.prompt
    return {
        "id": p.id,
        "question": p.question,
        "answer": p.answer,
        "correct": sample.correct,
        "process": sample.process,
        "steps": marked,
    }
