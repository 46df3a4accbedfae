"""The run directory: resolved config, per-iteration metrics, summary, data reports and checkpoints."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mstar_ray.config import ConfigError, MStarConfig
from mstar_ray.config.io import config_to_yaml
from mstar_ray.loop.state import JOURNALS, STATE_FILE


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

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory, to resume or report on."""
        run = cls(path)
        if not (run.path / "config.yaml").is_file():
            raise FileNotFoundError(f"{run.path} is not a run directory (no config.yaml)")
        if run.checkpoints.is_dir():
            run.repair_checkpoints()
        return run

    def resumable_checkpoint(self) -> Path:
        """The checkpoint a resumed run continues from; raises when the run finished or never got that far."""
        if (self.path / "summary.json").exists():
            raise ValueError(f"{self.path} finished already (summary.json exists): there is nothing to resume")
        checkpoint = self.latest_state()
        if checkpoint is None:
            raise ValueError(
                f"{self.path} has no resumable checkpoint (the run stopped before pre-evolution finished); "
                "start it again with `mstar run --config`"
            )
        return checkpoint

    def record_resume(self, cfg: MStarConfig, after_iteration: int, overrides: Sequence[str]) -> None:
        """Save the config a resumed run goes on with (its overrides applied) as config.yaml, and log the resume
        with its overrides in resumes.jsonl."""
        (self.path / "config.yaml").write_text(config_to_yaml(cfg))
        self.append_record("resumes.jsonl", {"after_iteration": after_iteration, "overrides": list(overrides)})

    def write_json(self, name: str, payload: Any) -> Path:
        """Write `payload` as indented JSON to a file of the run directory."""
        out = self.path / name
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        tmp.replace(out)
        return out

    def write_records(self, name: str, records: Sequence[dict[str, Any]]) -> Path:
        """Write a whole JSONL file of the run directory at once."""
        out = self.path / name
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in records))
        tmp.replace(out)
        return out

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one line to metrics.jsonl."""
        self.append_record("metrics.jsonl", record)

    def append_record(self, journal: str, record: dict[str, Any]) -> None:
        """Append one JSON line to a journal file of the run directory."""
        with (self.path / journal).open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def read_json(self, name: str) -> Any:
        """A JSON file of the run directory."""
        return json.loads((self.path / name).read_text())

    def read_metrics(self) -> list[dict[str, Any]]:
        """All metrics lines written so far."""
        path = self.path / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def checkpoint_staging(self, name: str, linked_from: str | None = None) -> Path:
        """An empty temporary directory to write checkpoint `name` into before `publish_checkpoint`; with
        `linked_from`, it starts as a copy of that published checkpoint whose files are hard links (no bytes copied)."""
        tmp = self.checkpoints / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        if linked_from is None:
            tmp.mkdir(parents=True)
        else:
            shutil.copytree(self.checkpoints / linked_from, tmp, copy_function=_link_or_copy, symlinks=True)
        return tmp

    def publish_checkpoint(self, name: str, keep_last: int | None = None, keep: str | None = None) -> Path:
        """Rename a staged checkpoint into place, so a half-written one is never visible, then prune iteration
        checkpoints beyond the last `keep_last`, sparing `keep` (the best one).

        A checkpoint published again is first renamed aside, so a complete copy exists at every moment: a kill
        between the two renames leaves `.NAME.old`, which `repair_checkpoints` puts back.
        """
        final, aside = self.checkpoints / name, self.checkpoints / f".{name}.old"
        if aside.exists():
            shutil.rmtree(aside)
        if final.exists():
            final.rename(aside)
        (self.checkpoints / f".{name}.tmp").rename(final)
        if aside.exists():
            shutil.rmtree(aside)
        if keep_last is not None:
            iterations = sorted(p for p in self.checkpoints.glob("iter_*") if p.is_dir() and not p.is_symlink())
            for old in iterations[:-keep_last]:
                if old.name != keep:
                    shutil.rmtree(old)
        return final

    def repair_checkpoints(self) -> list[str]:
        """Put back every checkpoint a kill left renamed aside mid-publication; returns their names."""
        repaired = []
        for aside in sorted(self.checkpoints.glob(".*.old")):
            final = self.checkpoints / aside.name[1 : -len(".old")]
            if final.exists():
                shutil.rmtree(aside)
            else:
                aside.rename(final)
                repaired.append(final.name)
        return repaired

    def point_best(self, name: str) -> None:
        """Make `checkpoints/best` a link to checkpoint `name` (replaced atomically)."""
        tmp = self.checkpoints / ".best.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(name, tmp)
        tmp.replace(self.checkpoints / "best")

    def snapshot_journals(self, checkpoint: Path) -> None:
        """Copy the per-iteration journals into a checkpoint, so resuming restores them as they were then."""
        for journal in JOURNALS:
            source = self.path / journal
            if source.exists():
                shutil.copyfile(source, checkpoint / (journal + ".tmp"))
                (checkpoint / (journal + ".tmp")).replace(checkpoint / journal)

    def restore_journals(self, checkpoint: Path) -> None:
        """Put back the journals saved in `checkpoint`: records of iterations after it are dropped."""
        for journal in JOURNALS:
            saved, current = checkpoint / journal, self.path / journal
            if saved.exists():
                shutil.copyfile(saved, current)
            else:
                current.unlink(missing_ok=True)

    def latest_state(self) -> Path | None:
        """The newest checkpoint a run can resume from (it holds a driver state), or None."""
        candidates = sorted(p for p in self.checkpoints.glob("iter_*") if (p / STATE_FILE).is_file())
        if candidates:
            return candidates[-1]
        pre = self.checkpoints / "pre_evolved"
        return pre if (pre / STATE_FILE).is_file() else None


def _link_or_copy(source: str, target: str) -> None:
    """A hard link where the filesystem has them (no bytes copied), else a copy (some shared mounts have none)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
