"""One DeepSpeed rank training the PRM: binary cross-entropy of step logits against soft or hard labels."""

from __future__ import annotations

import logging

import torch

from mstar_ray.prm.model import ProcessRewardModel, StepLabeledExample, collate_steps, encode_steps
from mstar_ray.training.sft import DistributedSpec, PolicyOptions, SFTTrainer

log = logging.getLogger("mstar")


class PRMTrainer(SFTTrainer):
    """The SFT rank's DeepSpeed machinery with the PRM's model, encoding and loss."""

    def __init__(
        self, backbone_path: str, dist: DistributedSpec, options: PolicyOptions, meta: dict, seed: int = 0
    ) -> None:
        self.meta = meta  # written beside the weights: label kind, aggregation, where the labels came from
        self.seed = seed  # draws a fresh value head
        super().__init__(backbone_path, dist, options)

    def _load_model(self, model_path: str) -> torch.nn.Module:
        model = ProcessRewardModel.from_pretrained(model_path, self.dtype, self.options.trust_remote_code, self.seed)
        if self.options.freeze_vision:
            log.info("PRM: froze %d vision parameters", model.freeze_vision())
        return model

    def _encode(self, example: StepLabeledExample) -> dict[str, torch.Tensor]:
        encoded = encode_steps(self.processor, example.prompt, example.steps)
        encoded["step_labels"] = torch.tensor(example.labels, dtype=torch.float32)
        return encoded

    def _collate(self, batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return collate_steps(batch, self.processor.tokenizer.pad_token_id)

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Mean BCE over every step of the micro-batch, and the number of steps."""
        labels = batch.pop("step_labels")
        logits = self.engine(**batch)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
        return loss, int(labels.numel())

    def save_pretrained(self, out_dir: str) -> None:
        """Write the PRM directory on rank 0 (all ranks take part in a ZeRO-3 gather)."""
        weights = self.export_weights()
        if self.dist.rank == 0:
            self._module().save(out_dir, self.processor, weights, self.meta)
