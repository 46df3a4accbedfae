"""MMStar (Chen et al., 2024) from the Hugging Face `Lin-Chen/MMStar` parquet or VLMEvalKit's `MMStar.tsv`.

Parquet (`mmstar.parquet`, split "val"): index, question (with the options inline: "...\\nOptions: A: x, B: y, ..."),
image (`datasets.Image`), answer (a letter), category, l2_category, meta_info. TSV: index, question, A, B, C, D,
answer, category, l2-category, image (base64). Sub-tasks are the six categories; MMStar-R, the paper's reasoning
subset, drops the two perception ones. Accuracy is single-pass.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from mstar_ray.config import OnBadRow
from mstar_ray.core.records import Prompt
from mstar_ray.data.formats import LoadReport
from mstar_ray.eval.benchmarks.extract import score_choice
from mstar_ray.eval.benchmarks.items import LETTERS, BenchItem, gold_letter, lettered_options, with_step_format
from mstar_ray.eval.benchmarks.sources import (
    collect_items,
    existing,
    parquet_files,
    parquet_rows,
    stored_image,
    text_of,
    tsv_rows,
)

NAME = "mmstar"
SPLIT = "val"
PERCEPTION = frozenset({"coarse perception", "fine-grained perception"})
CATEGORIES = PERCEPTION | {"instance reasoning", "logical reasoning", "math", "science & technology"}
_OPTIONS_RE = re.compile(r"\n?\s*Options\s*:\s*", re.IGNORECASE)
_MARKER_RE = re.compile(r"(?:^|,\s*|\n\s*)([A-J])\s*:\s*")
score = score_choice


def split_inline_options(question: str) -> tuple[str, tuple[str, ...]]:
    """The question stem and its options from "stem\\nOptions: A: x, B: y, ..." (options must run A, B, C, ...)."""
    heads = list(_OPTIONS_RE.finditer(question))
    if not heads:
        return question.strip(), ()
    stem, rest = question[: heads[-1].start()].strip(), question[heads[-1].end() :]
    sequence: list[re.Match] = []
    for m in _MARKER_RE.finditer(rest):  # keep the markers that continue A, B, C, ... (an option's text may hold "X: ")
        if len(sequence) < len(LETTERS) and m.group(1) == LETTERS[len(sequence)]:
            sequence.append(m)
    options = tuple(
        rest[m.end() : (sequence[i + 1].start() if i + 1 < len(sequence) else len(rest))].strip()
        for i, m in enumerate(sequence)
    )
    return stem, options


def parse_row(row: dict, cache_dir: Path, roots: list[Path]) -> BenchItem | str:
    """A `BenchItem` from one MMStar row (parquet or TSV), or the reason it is unusable."""
    stem, options = split_inline_options(text_of(row, "question"))
    columns = tuple(text_of(row, letter) for letter in LETTERS)
    if columns[0]:  # TSV: the options are columns A, B, ...
        options = columns[: columns.index("")] if "" in columns else columns
    if not stem or len(options) < 2:
        return "no question or options"
    gold = gold_letter(text_of(row, "answer"), options)
    if gold is None:
        return "answer not among the options"
    category = text_of(row, "category")
    if category not in CATEGORIES:
        return "unknown category"
    image = stored_image(row.get("image"), cache_dir, roots)
    if isinstance(image, str):
        return image
    text = with_step_format(f"{stem}\nOptions:\n{lettered_options(options)}")
    prompt = Prompt(text_of(row, "index"), text, (str(image),), gold)
    return BenchItem(prompt, category, category not in PERCEPTION, options)


def load(
    path: str | Path, cache_dir: str | Path, on_bad_row: OnBadRow = OnBadRow.SKIP, limit: int | None = None
) -> tuple[list[BenchItem], LoadReport]:
    """Items from `MMStar.tsv`, a parquet file, or a snapshot folder (its parquet preferred to its TSV)."""
    source = existing(path)
    tsvs = sorted(source.glob("*.tsv")) if source.is_dir() else []
    if source.suffix == ".tsv" or (tsvs and not any(source.rglob("*.parquet"))):
        tsv = source if source.suffix == ".tsv" else tsvs[0]
        rows, roots, fmt = tsv_rows(tsv), [tsv.parent], "tsv"
    else:
        files = parquet_files(source, SPLIT)
        rows, roots, fmt = parquet_rows(files), [files[0].parent], "parquet"
    parse = partial(parse_row, cache_dir=Path(cache_dir), roots=roots)
    report = LoadReport(str(source), fmt, SPLIT, image_cache=str(cache_dir))
    return collect_items(report, rows, parse, lambda row: text_of(row, "index"), on_bad_row, limit)
