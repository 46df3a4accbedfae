"""Load prompts from any supported dataset format through one entry point, `load_prompts`.

What the path is decides the format:

- a `.json` file (a list of rows) or a `.jsonl` file (one row a line): LLaVA / MathV360K rows with
  `conversations`, or flat rows `{"id", "question", "answer", "image" | "images", "reference"?}`;
- a `.parquet` file, or a folder of parquet shards (hub-style `SPLIT-00000-of-00002.parquet` names group the
  shards into splits);
- a folder written by `datasets`' `save_to_disk` (a Dataset, or a DatasetDict).

`PATH::SPLIT` picks a split; a dataset with one split needs none. Columns are detected by name or named by
`data.columns` (see `mstar_ray.data.rows`). Table rows are read as Arrow data, so `datasets.Image` values stay
`{"bytes", "path"}` dicts and are never decoded on load; embedded bytes are written once into the image cache
(default `<dataset folder>/.mstar_image_cache`). Unusable rows are skipped and counted by reason, or stop the load.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mstar_ray.config import DataColumnsConfig, OnBadRow
from mstar_ray.core.records import Prompt
from mstar_ray.data.rows import MalformedLine, RowParser, resolve_columns

if TYPE_CHECKING:
    import pyarrow as pa

IMAGE_CACHE_NAME = ".mstar_image_cache"
_BATCH_ROWS = 256  # table rows converted to Python at a time (bounds memory with embedded images)
_SHARD_RE = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)-\d{5}-of-\d{5}\.parquet$")


class BadRowError(ValueError):
    """A dataset row could not be used and the config says to stop."""


@dataclass
class LoadReport:
    """How many rows of a dataset were loaded, from which format and columns, and why the others were skipped."""

    path: str
    format: str = ""  # json, jsonl, parquet or save_to_disk
    split: str | None = None
    columns: dict = field(default_factory=dict)  # field -> column(s) read for it (None: none)
    image_cache: str | None = None  # where embedded images were written; None when the dataset embeds none
    loaded: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict[str, str] = field(default_factory=dict)  # reason -> first row id seen with it

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "format": self.format,
            "split": self.split,
            "columns": self.columns,
            "image_cache": self.image_cache,
            "loaded": self.loaded,
            "skipped": dict(self.skipped),
            "examples": self.examples,
        }


@dataclass
class RowSource:
    """The raw rows of one dataset and what is known about its columns before reading them."""

    format: str
    folder: Path  # default image root, and where the default image cache goes
    names: list[str]  # column names (JSON: every key some row has)
    embedded: set[str]  # columns holding image structs (`datasets.Image` values)
    rows: Iterator[object]
    split: str | None = None


def load_prompts(
    path: str | Path,
    image_root: str | Path | None = None,
    on_bad_row: OnBadRow = OnBadRow.SKIP,
    check_images: bool = True,
    require_answer: bool = True,
    columns: DataColumnsConfig | None = None,
    image_cache: str | Path | None = None,
) -> tuple[list[Prompt], LoadReport]:
    """Usable prompts of a dataset in any supported format, and a report of what was loaded and skipped.

    Relative image paths resolve against `image_root` (default: the dataset's folder). Without `require_answer`
    (unlabeled prompts) a row needs no answer; one it has is kept.
    """
    source = open_source(path)
    cols = resolve_columns(source.names, columns or DataColumnsConfig(), source.embedded, str(path), require_answer)
    cache = Path(image_cache) if image_cache else source.folder / IMAGE_CACHE_NAME
    root = Path(image_root) if image_root else source.folder
    parser = RowParser(cols, root, cache, check_images, require_answer)
    report = LoadReport(str(path), source.format, source.split, cols.to_dict())
    prompts: list[Prompt] = []
    for index, row in enumerate(source.rows):
        result = parser.parse(row, index)
        if isinstance(result, Prompt):
            prompts.append(result)
            continue
        row_id = parser.row_id(row, index)
        if on_bad_row == OnBadRow.ERROR:
            raise BadRowError(f"{path}: row {row_id}: {result}")
        report.skipped[result] += 1
        report.examples.setdefault(result, row_id)
    report.loaded = len(prompts)
    report.image_cache = str(cache.resolve()) if parser.cached_images else None
    return prompts, report


def open_source(path: str | Path) -> RowSource:
    """The rows of the dataset at `path` (with an optional `::SPLIT` suffix), by what the path is."""
    text, _, split = str(path).partition("::")
    location = Path(text)
    if not location.exists():
        raise FileNotFoundError(f"dataset not found: {location}")
    if location.is_dir() and (location / "dataset_dict.json").is_file():
        return _save_to_disk_source(location, split or None, dict_splits=True)
    if location.is_dir() and (location / "state.json").is_file():
        return _save_to_disk_source(location, split or None, dict_splits=False)
    if location.is_dir() or location.suffix == ".parquet":
        return _parquet_source(location, split or None)
    if location.suffix not in (".json", ".jsonl"):
        raise ValueError(
            f"{location}: unsupported dataset format; give a .json/.jsonl file, a .parquet file or folder, "
            "or a folder written by datasets' save_to_disk"
        )
    if split:
        raise ValueError(f"{path}: a JSON file has no splits; drop '::{split}'")
    return _json_source(location)


def _json_source(path: Path) -> RowSource:
    text = path.read_text()
    if path.suffix == ".jsonl":
        rows = [_json_line(line) for line in text.splitlines() if line.strip()]
    else:
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err}); one row a line needs the .jsonl suffix") from None
        if not isinstance(rows, list):
            raise BadRowError(f"{path}: expected a JSON list of rows, got {type(rows).__name__}")
    names = list(dict.fromkeys(key for row in rows if isinstance(row, dict) for key in row))
    return RowSource(path.suffix[1:], path.parent, names, set(), iter(rows))


def _json_line(line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return MalformedLine()


def _pick_split(where: Path, split: str | None, names: list[str]) -> str:
    available = sorted(names)
    if split is not None and split not in available:
        raise ValueError(f"{where} has no split {split!r}; its splits: {', '.join(available)}")
    if split is None and len(available) != 1:
        raise ValueError(
            f"{where} holds the splits {', '.join(available)}: pick one as {where}::SPLIT, e.g. {where}::{available[0]}"
        )
    return split or available[0]


def _save_to_disk_source(folder: Path, split: str | None, dict_splits: bool) -> RowSource:
    import datasets  # heavy: imported only for datasets written by save_to_disk

    loaded = datasets.load_from_disk(str(folder))
    if dict_splits:
        split = _pick_split(folder, split, list(loaded))
        loaded = loaded[split]
    elif split is not None:
        raise ValueError(f"{folder} is a single saved Dataset, not a DatasetDict; drop '::{split}'")
    schema = loaded.data.schema
    batches = loaded.with_format("arrow").iter(batch_size=_BATCH_ROWS)
    return RowSource("save_to_disk", folder, schema.names, _image_columns(schema), _table_rows(batches), split)


def _file_split(file: Path, location: Path) -> str | None:
    """The split a parquet file belongs to: named in the file (hub shards `train-00000-of-00002.parquet`) or by its
    folder (the parquet converter's `default/train/0000.parquet`); None for a file directly in `location`."""
    if match := _SHARD_RE.match(file.name):
        return match.group("split")
    folders = file.parent.relative_to(location).parts
    return folders[-1] if folders else None


def _parquet_source(location: Path, split: str | None) -> RowSource:
    import pyarrow.parquet as pq

    files = sorted(location.rglob("*.parquet")) if location.is_dir() else [location]
    files = [f for f in files if not any(part.startswith(".") for part in f.relative_to(location).parts)]
    if not files:
        raise ValueError(
            f"{location}: no parquet files, and not a folder written by datasets' save_to_disk "
            "(no dataset_dict.json or state.json)"
        )
    splits = [_file_split(f, location) for f in files] if location.is_dir() else [None]
    if all(splits):
        by_split: dict[str, list[Path]] = {}
        for f, name in zip(files, splits, strict=True):
            by_split.setdefault(name, []).append(f)
        split = _pick_split(location, split, list(by_split))
        files = by_split[split]
    elif split is not None:
        raise ValueError(f"{location}: its parquet file names name no splits; drop '::{split}'")
    schema = pq.read_schema(files[0])
    batches = (batch for f in files for batch in pq.ParquetFile(f).iter_batches(batch_size=_BATCH_ROWS))
    folder = location if location.is_dir() else location.parent
    return RowSource("parquet", folder, schema.names, _image_columns(schema), _table_rows(batches), split)


def _table_rows(batches: Iterator) -> Iterator[dict]:
    for batch in batches:
        yield from batch.to_pylist()


def _image_columns(schema: pa.Schema) -> set[str]:
    """Columns holding `datasets.Image` values (structs with bytes and path) or lists of them."""
    import pyarrow as pa

    def is_image(t: pa.DataType) -> bool:
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return is_image(t.value_type)
        return pa.types.is_struct(t) and {"bytes", "path"} <= {t.field(i).name for i in range(t.num_fields)}

    return {f.name for f in schema if is_image(f.type)}
