"""Scoring (image, question, response) triples with a trained PRM: one score in [0, 1] per reasoning step."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mstar_ray.core.records import Prompt
from mstar_ray.core.steps import split_steps
from mstar_ray.models.loading import load_processor
from mstar_ray.prm.model import ProcessRewardModel, collate_steps, encode_prompt, encode_steps


class PRMScorer:
    """Holds one PRM copy for inference."""

    def __init__(
        self,
        prm_path: str,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 32,
        trust_remote_code: bool = False,
    ) -> None:
        self.processor = load_processor(prm_path, trust_remote_code)
        self.model = ProcessRewardModel.from_pretrained(prm_path, dtype, trust_remote_code).to(device).eval()
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def score(self, items: Sequence[tuple[Prompt, str]]) -> list[list[float]]:
        """Step scores of each (prompt, response), in order; one per step of `split_steps(response)`."""
        scores: list[list[float]] = []
        pad_id = self.processor.tokenizer.pad_token_id
        last: tuple[Prompt | None, dict[str, torch.Tensor]] = (None, {})  # items come grouped by prompt
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            steps = [split_steps(response) for _, response in chunk]
            encoded = []
            for (prompt, _), s in zip(chunk, steps, strict=True):
                if last[0] != prompt:  # each prompt's images processed once per run of its responses
                    last = (prompt, encode_prompt(self.processor, prompt))
                encoded.append(encode_steps(self.processor, prompt, s, last[1]))
            batch = {k: v.to(self.device) for k, v in collate_steps(encoded, pad_id).items()}
            probs = torch.sigmoid(self.model(**batch).float()).tolist()  # (N,) over all steps of the chunk
            for s in steps:
                scores.append(probs[: len(s)])
                probs = probs[len(s) :]
        return scores
