"""Typed records that flow between the phases of an M-STaR iteration."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Prompt:
    """One labeled (images, question) prompt."""

    id: str
    question: str  # without "<image>" tags
    images: tuple[str, ...]  # absolute paths, in the order the model is shown them
    answer: str  # gold final answer, e.g. "3" or "B"
    reference: str = ""  # gold response with chain of thought, when the dataset has one
    # What generated the prompt, where the data knows it (the synthetic task: grid, counts, question kind);
    # real datasets have none. Not part of the prompt's identity.
    truth: dict | None = field(default=None, compare=False)


@dataclass
class Sample:
    """One sampled response to a prompt."""

    prompt_id: str
    text: str
    num_tokens: int
    finished: bool  # ended with EOS rather than hitting max_new_tokens
    weights_version: int
    correct: bool | None = None  # set by the verify phase
    process: str | None = None  # set by the verify phase where the prompt has ground truth (eval.process.Process)
    step_scores: list[float] = field(default_factory=list)  # one per reasoning step, set by a PRM
    token_logprobs: list[float] | None = None  # one per response token, when sampling asked for them


@dataclass
class PromptRollouts:
    """The K samples drawn for one prompt."""

    prompt: Prompt
    samples: list[Sample]

    @property
    def num_correct(self) -> int:
        return sum(bool(s.correct) for s in self.samples)


@dataclass(frozen=True)
class TrainExample:
    """A (prompt, response) pair to fine-tune on; loss is taken on the response tokens only."""

    prompt: Prompt
    response: str
