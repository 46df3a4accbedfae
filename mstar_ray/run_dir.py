"""The run directory: resolved config, per-iteration metrics, summary, data reports and checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mstar_ray.config import ConfigError, MStarConfig, config_to_yaml


class RunDir:
    """Files of one run under `output_dir/name`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"

    @classmethod
    def create(cls, cfg: MStarConfig) -> RunDir:
        """Make the directory (refusing to reuse a non-empty one unless run.overwrite) and save the config."""
        run = cls(Path(cfg.run.output_dir) / cfg.run.name)
        if run.path.exists() and any(run.path.iterdir()) and not cfg.run.overwrite:
            raise ConfigError(f"run.name: run directory {run.path} exists and is not empty (set run.overwrite=true)")
        if run.path.exists() and cfg.run.overwrite:
            shutil.rmtree(run.path)
        run.checkpoints.mkdir(parents=True)
        (run.path / "config.yaml").write_text(config_to_yaml(cfg))
        return run

    def write_json(self, name: str, payload: Any) -> Path:
        """Write `payload` as indented JSON to a file of the run directory."""
        out = self.path / name
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        tmp.replace(out)
        return out

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one line to metrics.jsonl."""
        with (self.path / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """All metrics lines written so far."""
        path = self.path / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def checkpoint_staging(self, name: str) -> Path:
        """An empty temporary directory to write checkpoint `name` into before `publish_checkpoint`."""
        tmp = self.checkpoints / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    def publish_checkpoint(self, name: str, keep_last: int | None = None) -> Path:
        """Rename a staged checkpoint into place, so a half-written one is never visible, then prune old ones."""
        final = self.checkpoints / name
        if final.exists():
            shutil.rmtree(final)
        (self.checkpoints / f".{name}.tmp").rename(final)
        if keep_last is not None:
            iterations = sorted(p for p in self.checkpoints.glob("iter_*") if p.is_dir())
            for old in iterations[:-keep_last]:
                shutil.rmtree(old)
        return final
