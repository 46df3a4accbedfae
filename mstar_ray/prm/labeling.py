"""Monte-Carlo step labels (Math-Shepherd style) and the JSONL file they are kept in.

A policy samples responses; every step prefix of a response but the last is completed N times, and the step's
label is the share of completions whose final answer is right (soft) or whether any is (hard). The last step's
label is the response's own correctness: its only completion is itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mstar_ray.config import LabelKind
from mstar_ray.core.records import Prompt
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.core.seeds import derive_seed
from mstar_ray.core.steps import split_steps, step_prefixes
from mstar_ray.eval.metrics import mark_correct
from mstar_ray.eval.validation import Generator
from mstar_ray.prm.model import StepLabeledExample


@dataclass(frozen=True)
class LabelingSpec:
    """How many responses and completions to sample, and which label to derive."""

    responses_per_prompt: int
    completions_per_step: int
    kind: LabelKind
    sampling: SamplingParams  # temperature, top_p, max_new_tokens, seed; n is set per phase


def step_value(correct: Sequence[bool], kind: LabelKind) -> float:
    """A step's label from the correctness of its completions."""
    if kind == LabelKind.HARD:
        return float(any(correct))
    return sum(correct) / len(correct)


def label_steps(generator: Generator, prompts: Sequence[Prompt], spec: LabelingSpec) -> list[StepLabeledExample]:
    """Sample responses to `prompts`, complete each step prefix N times, and label every step."""
    responses = generator.generate(prompts, spec.sampling.with_(n=spec.responses_per_prompt))
    mark_correct(responses)
    labeled: list[tuple[int, list[str], bool]] = []  # (prompt index, steps, response correct)
    for index, group in enumerate(responses):
        correct = {s.text: bool(s.correct) for s in group.samples}
        labeled += [(index, split_steps(text), ok) for text, ok in correct.items()]  # each distinct response once
    # Responses to one prompt often share their first steps: each distinct (prompt, prefix) is completed once.
    requests = list(dict.fromkeys((index, prefix) for index, steps, _ in labeled for prefix in step_prefixes(steps)))
    completions = generator.generate(
        [prompts[index] for index, _ in requests],
        spec.sampling.with_(n=spec.completions_per_step, seed=derive_seed(spec.sampling.seed, "completions")),
        prefixes=[prefix for _, prefix in requests],
    )
    mark_correct(completions)
    values = {
        request: step_value([bool(s.correct) for s in group.samples], spec.kind)
        for request, group in zip(requests, completions, strict=True)
    }
    return [
        StepLabeledExample(prompts[i], steps, [values[(i, p)] for p in step_prefixes(steps)] + [float(correct)])
        for i, steps, correct in labeled
    ]


def write_step_labels(path: str | Path, examples: Sequence[StepLabeledExample], kind: LabelKind) -> Path:
    """One JSON object per response: image path, question, answer, steps and their labels."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for ex in examples:
            p = ex.prompt
            row = {"id": p.id, "images": list(p.images), "question": p.question, "answer": p.answer}
            row |= {"steps": ex.steps, "labels": ex.labels, "label_kind": kind.value}
            f.write(json.dumps(row) + "\n")
    return path


def read_step_labels(path: str | Path) -> list[StepLabeledExample]:
    """Examples from a step-label JSONL file; a malformed row is an error naming its line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PRM label file not found: {path}")
    examples = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            steps, labels = list(row["steps"]), [float(v) for v in row["labels"]]
            images = (
                tuple(row["images"]) if "images" in row else (row["image"],)
            )  # "image": files before multi-image prompts
            prompt = Prompt(str(row["id"]), row["question"], images, row["answer"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}:{number}: not a step-label row ({err!r})") from None
        if not steps or len(steps) != len(labels) or not all(0.0 <= v <= 1.0 for v in labels):
            raise ValueError(f"{path}:{number}: needs one label in [0, 1] per step")
        missing = [image for image in prompt.images if not Path(image).is_file()]
        if missing:
            raise ValueError(f"{path}:{number}: image not found: {missing[0]}")
        examples.append(StepLabeledExample(prompt, steps, labels))
    if not examples:
        raise ValueError(f"{path}: no step-label rows")
    return examples
