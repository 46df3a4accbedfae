"""The PRM's sections of the configuration tree: how steps are labelled, how the PRM is trained, how it scores."""

from __future__ import annotations

from pydantic import Field

from mstar_ray.config.base import LabelKind, ScoreAggregation, Section


class PRMLabelConfig(Section):
    policy: str | None = None
    """Policy checkpoint that samples the responses to label (null: the pre-evolved model in `mstar run`,
    model.path in `mstar prm label`)."""
    prompts: int = Field(default=200, ge=1)
    """Labeled prompts to sample responses for."""
    responses_per_prompt: int = Field(default=4, ge=1)
    """Responses sampled per prompt; each is split into steps and labelled."""
    completions_per_step: int = Field(default=4, ge=1)
    """N: Monte-Carlo completions sampled from every step prefix."""
    kind: LabelKind = Field(default=LabelKind.SOFT, strict=False)
    """Soft (share of completions correct) or hard (any completion correct) step labels."""
    temperature: float = Field(default=1.0, gt=0)
    """Sampling temperature of responses and completions."""


class PRMTrainConfig(Section):
    lr: float = Field(default=1e-5, gt=0)
    """Learning rate of PRM training."""
    epochs: int = Field(default=2, ge=1)
    """Passes over the labelled responses."""
    micro_batch_size: int = Field(default=8, ge=1)
    """Responses per forward pass per rank."""
    freeze_vision: bool = True
    """Keep the vision tower's weights fixed."""
    trainer_ranks: int = Field(default=1, ge=1)
    """DeepSpeed ranks training the PRM (resources.cpus_per_trainer / gpus_per_trainer each)."""


class PRMConfig(Section):
    enabled: bool = False
    """Use a process reward model: PRM selection rules, Reward-Pass@2 and the automatic temperature need it."""
    path: str | None = None
    """Trained PRM directory (`mstar prm train`); null: `mstar run` labels and trains one after pre-evolution."""
    labels: str | None = None
    """Step-label JSONL to train on when prm.path is null (null: label with prm.label settings)."""
    aggregation: ScoreAggregation = Field(default=ScoreAggregation.MIN, strict=False)
    """Response score from step scores: min (paper), mean, last or product."""
    batch_size: int = Field(default=32, ge=1)
    """Responses per PRM forward pass."""
    label: PRMLabelConfig = PRMLabelConfig()
    train: PRMTrainConfig = PRMTrainConfig()
