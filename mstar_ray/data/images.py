"""Images of prompts: opening them, checking them, and writing embedded image bytes to files.

Every prompt refers to its images by path, so that Ray actors on any node with the same filesystem read them
without shipping pixels through the object store. Datasets that embed images (`datasets.Image` features in
parquet or `save_to_disk` directories, base64 columns of benchmark TSV files) have them written once into a
cache folder under a name derived from their content.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

from PIL import Image, UnidentifiedImageError


def load_image(path: str) -> Image.Image:
    """Open an image as RGB."""
    with Image.open(path) as img:
        return img.convert("RGB")


def image_problem(path: Path, check_image: bool = True) -> str | None:
    """Why the image at `path` cannot be used ("missing image", "unreadable image"), or None."""
    if not path.is_file():
        return "missing image"
    if check_image:
        try:
            with Image.open(path) as img:
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            return "unreadable image"
    return None


def store_image_bytes(data: bytes, cache_dir: str | Path) -> Path:
    """Write encoded image bytes (PNG, JPEG, ...) into `cache_dir` once, named by their SHA-256, and return the path.

    Raises `ValueError` when the bytes are not an image PIL can read.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            suffix = "." + (img.format or "png").lower()
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"not a readable image ({err})") from None
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / (hashlib.sha256(data).hexdigest()[:32] + suffix)
    if not path.is_file():
        # A private temporary file, renamed into place: concurrent writers (a run and an eval sharing the cache)
        # never see a half-written image, and the last rename of identical bytes wins harmlessly.
        handle, tmp = tempfile.mkstemp(dir=cache, prefix=path.name, suffix=".tmp")
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return path.resolve()
