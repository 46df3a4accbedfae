"""What the driver must remember to continue a run exactly where a checkpoint left it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "driver_state.json"
TRAINER_STATE_DIR = "trainer_state"  # DeepSpeed's engine state, one optimizer partition per rank
JOURNALS = ("metrics.jsonl", "prompts.jsonl")  # per-iteration records; restored from the checkpoint on resume


@dataclass(frozen=True)
class BestCheckpoint:
    """The iteration checkpoint with the highest `metric` so far (kept through pruning, linked as `best`)."""

    name: str
    metric: str
    value: float


@dataclass
class DriverState:
    """The loop's position and everything adaptive in it, after `iteration` completed. Nothing random: every draw
    derives from run.seed and its purpose (the cursors' orders from their epoch)."""

    iteration: int
    weights_version: int
    total_train_steps: int
    temperature: float
    cursor: dict[str, int]  # labeled prompts: epoch and position in that epoch's order
    unlabeled_cursor: dict[str, int] | None
    stage_started: bool  # a training stage (optimizer and schedule) is live and saved under trainer_state/
    recoveries: dict[str, int] = field(default_factory=dict)  # actor restarts and trainer rebuilds so far
    best: BestCheckpoint | None = None

    def write(self, checkpoint: Path) -> None:
        """Write atomically into a checkpoint directory (a temporary file renamed into place)."""
        tmp = checkpoint / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(checkpoint / STATE_FILE)

    @classmethod
    def read(cls, checkpoint: Path) -> DriverState:
        fields = json.loads((checkpoint / STATE_FILE).read_text())
        fields.pop("selection_rng", None)  # written by earlier versions; selections now draw per prompt
        best = fields.pop("best", None)
        return cls(**fields, best=BestCheckpoint(**best) if best else None)
