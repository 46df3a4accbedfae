"""The project's default tiny model: a random-weight Qwen2-VL from the model factory (`mstar_ray.toy.factory`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mstar_ray.toy.factory import TinyVLMSpec, build_tiny_model

__all__ = ["TinyVLMSpec", "build_tiny_vlm"]


def build_tiny_vlm(corpus: Iterable[str], out_dir: str | Path, spec: TinyVLMSpec | None = None, seed: int = 0) -> Path:
    """Train a tokenizer on `corpus`, build a random-weight Qwen2-VL around it and save both to `out_dir`."""
    return build_tiny_model("qwen2_vl", corpus, out_dir, spec, seed)
