"""Sampling in which every sequence draws from its own random stream, for transformers' `generate`.

`generate` samples a batch from one shared generator, so a sequence's tokens depend on what else is in the batch,
on the batch size and on the worker. Here decoding is greedy over the filtered logits plus Gumbel noise drawn from
the sequence's own generator (the Gumbel-max trick: the argmax of logits / T + Gumbel noise is a sample of
softmax(logits / T)). Each sequence draws one noise vector per step, so its samples depend only on its seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor


def filter_logits(scores: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """`scores` (R, V) divided by the temperature, with tokens outside the top-k and outside the top-p nucleus
    (the smallest set of most likely tokens whose probability reaches top_p) set to -inf."""
    scores = scores.float() / temperature
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]  # (R, 1)
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        ordered, order = torch.sort(scores, dim=-1, descending=True)  # (R, V)
        probs = ordered.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of the more likely tokens
        drop = before >= top_p  # the most likely token is always kept
        scores = scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return scores


class PerSequenceSampling(LogitsProcessor):
    """Turns greedy decoding into sampling with one generator per sequence (row of the batch)."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_k: int, top_p: float, device: torch.device):
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = filter_logits(scores, self.temperature, self.top_k, self.top_p)  # (R, V)
        vocab = scores.shape[-1]
        uniform = torch.stack([torch.rand(vocab, generator=g, device=scores.device) for g in self.generators])
        gumbel = -torch.log(-torch.log(uniform.clamp(min=torch.finfo(torch.float32).tiny)))
        return scores + gumbel
