"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mstar_ray.config.io import load_config
from mstar_ray.loop.run_dir import RunDir


@pytest.fixture
def new_run_dir(tmp_path: Path) -> Callable[..., RunDir]:
    """Makes an empty run directory under tmp_path/`sub` with a minimal config and the `extra` overrides."""

    def make(*extra: str, sub: str = "") -> RunDir:
        base = ["model.path=/m", "data.labeled=l", "data.validation=v", "loop.eval_test=false"]
        return RunDir.create(load_config(None, [*base, f"run.output_dir={tmp_path / sub}", *extra]))

    return make
