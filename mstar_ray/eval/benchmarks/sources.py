"""Reading benchmarks in their published layouts: Hugging Face parquet, VLMEvalKit TSV, JSON with an image folder.

A path may be one file or a folder: a Hugging Face snapshot (`data/<split>-*.parquet`, `<config>/<split>-*.parquet`,
or the parquet converter's `<config>/<split>/*.parquet`) from which the benchmark's evaluation split is chosen.
Images come as `datasets.Image` structs (`{"bytes", "path"}`), base64 strings, or paths relative to the files;
embedded ones are written once into an image cache folder.
"""

from __future__ import annotations

import base64
import binascii
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from mstar_ray.config import OnBadRow
from mstar_ray.data.formats import BadRowError, LoadReport
from mstar_ray.data.images import image_problem, store_image_bytes
from mstar_ray.eval.benchmarks.items import BenchItem

KNOWN_SPLITS = frozenset({"train", "validation", "val", "dev", "test", "testmini"})
# VLMEvalKit TSVs store an image once; a repeated image's cell holds the index of the row that has it.
_MAX_IMAGE_REF_CHARS = 64


def present(value: object) -> bool:
    """Whether a cell holds a value: not None, NaN, empty, or the "nan" that pandas writes for a missing one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return not (isinstance(value, str) and value.strip().lower() in ("", "nan"))


def text_of(row: dict, *names: str) -> str:
    """The first present value among `names` (alternative spellings of one column) as stripped text, or ""."""
    for name in names:
        if present(row.get(name)):
            return str(row[name]).strip()
    return ""


def _split_of(file: Path, root: Path) -> str:
    name = file.stem.split("-")[0]
    if name in KNOWN_SPLITS:
        return name
    parents = [p for p in file.relative_to(root).parts[:-1] if p in KNOWN_SPLITS]
    return parents[-1] if parents else name


def parquet_files(path: Path, split: str, config: str | None = None) -> list[Path]:
    """The parquet files of `split` under a snapshot folder (all of them when none is named by a split)."""
    if path.is_file():
        return [path]
    files = sorted(path.rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no parquet files under {path}")
    if config:  # a snapshot with several configurations (e.g. MMBench en / cn / cc)
        files = [f for f in files if config in f.relative_to(path).parts[:-1]] or files
    chosen = [f for f in files if _split_of(f, path) == split]
    if chosen:
        return chosen
    found = sorted({_split_of(f, path) for f in files} & KNOWN_SPLITS)
    if found:
        raise ValueError(f"{path}: no {split!r} split among the parquet files (found splits {found})")
    return files


def parquet_rows(files: Iterable[Path]) -> Iterator[dict]:
    """Rows of parquet files as dicts, read 64 at a time (a load with a limit stops without reading every image)."""
    import pyarrow.parquet as pq

    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=64):
            yield from batch.to_pylist()


def tsv_rows(path: Path) -> list[dict]:
    """Rows of a VLMEvalKit-style TSV as dicts of strings ("" for an empty cell), image references resolved."""
    import csv

    csv.field_size_limit(sys.maxsize)  # base64 image cells exceed the default limit
    with path.open(newline="", encoding="utf-8") as f:
        rows = [{k: v or "" for k, v in row.items() if k is not None} for row in csv.DictReader(f, delimiter="\t")]
    full = {row.get("index", ""): row["image"] for row in rows if len(row.get("image", "")) > _MAX_IMAGE_REF_CHARS}
    for row in rows:
        image = row.get("image", "")
        if 0 < len(image) <= _MAX_IMAGE_REF_CHARS and image in full:
            row["image"] = full[image]
    return rows


def stored_image(cell: object, cache_dir: Path, roots: Iterable[Path] = ()) -> Path | str:
    """The file of an image cell (struct with bytes or path, base64 string, or relative path), or why it is unusable."""
    if isinstance(cell, dict):
        if cell.get("bytes"):
            return _store(cell["bytes"], cache_dir)
        cell = cell.get("path")
    if not present(cell):
        return "missing image"
    if isinstance(cell, bytes):
        return _store(cell, cache_dir)
    text = str(cell).strip()
    relative = not Path(text).expanduser().is_absolute()
    candidates = [root / text for root in roots] if relative else [Path(text).expanduser()]
    for candidate in candidates:
        if candidate.is_file():
            return image_problem(candidate) or candidate.resolve()
    if len(text) > _MAX_IMAGE_REF_CHARS:  # not a file: a base64-encoded image (TSV cells)
        try:
            return _store(base64.b64decode(text, validate=True), cache_dir)
        except (binascii.Error, ValueError):
            pass
    return "missing image"


def _store(data: bytes, cache_dir: Path) -> Path | str:
    try:
        return store_image_bytes(data, cache_dir)
    except ValueError:
        return "unreadable image"


def collect_items(
    report: LoadReport,
    rows: Iterable[object],
    parse: Callable[[dict], BenchItem | str],
    row_id: Callable[[dict], str],
    on_bad_row: OnBadRow,
    limit: int | None,
) -> tuple[list[BenchItem], LoadReport]:
    """Parse rows into items until `limit`; an unusable row is counted in `report` by reason, or stops the load."""
    items: list[BenchItem] = []
    for index, row in enumerate(rows):
        if limit is not None and len(items) >= limit:
            break
        if isinstance(row, dict):
            result = parse(row)
            rid = row_id(row) or f"#{index}"
        else:
            result, rid = "row is not an object", f"#{index}"
        if isinstance(result, BenchItem):
            items.append(result)
            continue
        if on_bad_row == OnBadRow.ERROR:
            raise BadRowError(f"{report.path}: row {rid}: {result}")
        report.skipped[result] += 1
        report.examples.setdefault(result, rid)
    report.loaded = len(items)
    return items, report


def existing(path: str | Path) -> Path:
    """The benchmark path, expanded; FileNotFoundError naming it when it does not exist."""
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise FileNotFoundError(f"benchmark file or folder not found: {resolved}")
    return resolved
