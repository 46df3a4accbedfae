"""Shared fixtures: a tiny synthetic dataset and a tiny Qwen2-VL, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from mstar_ray.toy.synthetic import TaskSpec, corpus_texts, write_synthetic_dataset
from mstar_ray.toy.tiny import build_tiny_vlm


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic task splits (LLaVA JSON + PNG), small."""
    spec = TaskSpec(seed_size=16, labeled_size=24, validation_size=6, test_size=6)
    return write_synthetic_dataset(tmp_path_factory.mktemp("data"), spec, seed=0)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Qwen2-VL checkpoint directory with its own tokenizer and processor."""
    return build_tiny_vlm(corpus_texts(n=300), tmp_path_factory.mktemp("model"), seed=0)
