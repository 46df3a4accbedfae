"""Rollout worker actor: one policy copy on the transformers backend."""

from __future__ import annotations

from collections.abc import Sequence

import ray
import torch

from actors.threads import set_torch_threads
from mstar_ray.records import Prompt, PromptRollouts
from mstar_ray.rollout.hf_engine import TransformersRolloutEngine
from mstar_ray.rollout.sampling import SamplingParams


@ray.remote
class RolloutWorker:
    """Samples responses and receives weights from trainer rank 0."""

    def __init__(
        self, model_path: str, dtype: str, use_gpu: bool, sequences_per_call: int, torch_threads: int, cpus: float
    ) -> None:
        set_torch_threads(torch_threads, cpus)
        self.engine = TransformersRolloutEngine(model_path, dtype, "cuda" if use_gpu else "cpu", sequences_per_call)

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, prefixes: Sequence[str] | None = None
    ) -> list[PromptRollouts]:
        return self.engine.generate(prompts, params, prefixes)

    def load_weights(self, state_dict: dict[str, torch.Tensor], version: int) -> int:
        self.engine.load_weights(state_dict, version)
        return version

    def weights_version(self) -> int:
        return self.engine.weights_version

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.engine.state_dict()
