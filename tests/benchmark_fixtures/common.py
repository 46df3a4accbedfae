"""What every fixture writer shares: images, embedded image cells, parquet and TSV writing."""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import datasets
from datasets import Features
from PIL import Image as PILImage

NOT_AN_IMAGE = b"this is not an image at all, just some bytes pretending to be one" * 2


def image_bytes(seed: int, fmt: str = "PNG") -> bytes:
    """A small solid-colour image, distinct per seed."""
    out = io.BytesIO()
    PILImage.new("RGB", (40, 32), ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256)).save(out, fmt)
    return out.getvalue()


def embedded(data: bytes | None) -> dict | None:
    return None if data is None else {"bytes": data, "path": None}


def write_parquet(path: Path, rows: list[dict], features: Features) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {name: [row[name] for row in rows] for name in features}
    datasets.Dataset.from_dict(columns, features=features).to_parquet(str(path))
    return path


def write_tsv(path: Path, header: list[str], rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
