"""`mstar run`: load and check the data, join Ray, reserve the placement group, and run (or resume) the loop."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from mstar_ray.config import ConfigError, MStarConfig
from mstar_ray.config.io import load_config
from mstar_ray.groups.cluster import connect_ray
from mstar_ray.groups.placement import Placement
from mstar_ray.loop.datasets import load_datasets
from mstar_ray.loop.driver import MStarRun
from mstar_ray.loop.preflight import preflight
from mstar_ray.loop.run_dir import RunDir
from mstar_ray.loop.state import DriverState

log = logging.getLogger("mstar")

ACTOR_LOGS = "logs"  # the run directory's folder of actor output, one file per actor

# What a checkpoint's state means depends on these: a resume that changed one would not continue the same run
KEPT_ON_RESUME = ("run.seed", "loop.mode", "loop.interval", "resources.trainer_ranks", "train.zero_stage", "train.lora")


def check_resume_keeps_the_run(run: RunDir, cfg: MStarConfig) -> None:
    """Refuse resume overrides that change the run's seed, its prompt order or its trainer state's layout."""
    saved, now = _dotted(load_config(run.path / "config.yaml").model_dump()), _dotted(cfg.model_dump())
    for key, value in saved.items():
        if key.startswith(KEPT_ON_RESUME) and now[key] != value:
            raise ConfigError(
                f"{key}: a resumed run keeps its {key} ({value!r}); the checkpoint's prompts, draws and trainer "
                "state depend on it. Start a new run to change it"
            )


def _dotted(tree: dict, prefix: str = "") -> dict:
    """A nested config dump as {dotted key: value}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _dotted(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_mstar(cfg: MStarConfig, resume: str | Path | None = None, overrides: Sequence[str] = ()) -> dict:
    """Load data, create (or reopen, to resume) the run directory, reserve the placement group, start the actors
    and run; the entry point of `mstar run`. A resumed run records the overrides it was given."""
    p = cfg.prm
    if p.enabled and p.path is None and p.labels is None and p.label.policy is not None:
        raise ConfigError(
            "prm.label.policy is for `mstar prm label`; `mstar run` labels with its own pre-evolved model. "
            "Unset it, or run `mstar prm label` first and set prm.labels"
        )
    checkpoint = None
    if resume is not None:
        run = RunDir.open(resume)
        check_resume_keeps_the_run(run, cfg)
        checkpoint = run.resumable_checkpoint()
    data = load_datasets(cfg, benchmarks=True)
    preflight(cfg, data)
    # Before the run directory, so a layout that does not fit never touches an earlier run; actor output goes to
    # the run's log files
    connect_ray(cfg, log_to_driver=False)
    run_path = run.path if resume is not None else Path(cfg.run.output_dir) / cfg.run.name
    placement = Placement(cfg, actor_logs=(run_path / ACTOR_LOGS).resolve())
    try:
        if resume is None:
            run = RunDir.create(cfg)
        else:
            run.record_resume(cfg, DriverState.read(checkpoint).iteration, overrides)
        loaded = {s: r["loaded"] for s, r in data.reports.items() if r}
        log.info("run directory %s; prompts loaded: %s", run.path, loaded)
        log.info("actor output (vLLM, DeepSpeed, warnings) goes to %s/", run.path / ACTOR_LOGS)
        loop = MStarRun(cfg, run, data, placement, checkpoint)
        try:
            return loop.fit()
        finally:
            loop.shutdown()
    finally:
        placement.remove()
