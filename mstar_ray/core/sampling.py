"""Sampling settings shared by every rollout backend."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SamplingParams:
    """How to sample responses; temperature 0 means greedy decoding."""

    n: int = 1  # samples per prompt
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 disables top-k filtering
    max_new_tokens: int = 128
    seed: int = 0
    logprobs: bool = False  # report each sampled token's log-probability under the policy (raw logits)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def with_(self, **changes: object) -> SamplingParams:
        """A copy with some fields changed."""
        return replace(self, **changes)
