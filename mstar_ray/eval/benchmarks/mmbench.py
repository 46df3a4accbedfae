"""MMBench dev v1.1 (Liu et al., ECCV 2024) from the official `MMBench_DEV_EN_V11.tsv` or the `lmms-lab/MMBench`
parquet (config "en", split "dev").

TSV columns: index, question, hint, A, B, C, D (empty when a question has fewer options), answer, category,
l2-category, image (base64, or the index of the row holding a repeated image), source, split, comment; the parquet
has the same with `datasets.Image` images and "L2-category". The prompt is VLMEvalKit's (hint, question, options).
Sub-tasks are the six L2 abilities; MMBench-R drops the three perception ones. This is plain single-pass accuracy,
not MMBench's circular evaluation (every rotation of the options must be answered right).
"""

from __future__ import annotations

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

NAME = "mmbench"
SPLIT = "dev"
CONFIG = "en"
REASONING = frozenset({"attribute_reasoning", "relation_reasoning", "logic_reasoning"})
# The L2 ability of each leaf category, for files without an l2-category column.
L2_OF_CATEGORY = {
    **dict.fromkeys(
        ("image_scene", "image_style", "image_topic", "image_quality", "image_emotion"), "coarse_perception"
    ),
    **dict.fromkeys(
        ("object_localization", "attribute_recognition", "celebrity_recognition", "ocr"),
        "finegrained_perception (instance-level)",
    ),
    **dict.fromkeys(
        ("spatial_relationship", "attribute_comparison", "action_recognition"),
        "finegrained_perception (cross-instance)",
    ),
    **dict.fromkeys(("physical_property_reasoning", "function_reasoning", "identity_reasoning"), "attribute_reasoning"),
    **dict.fromkeys(("social_relation", "physical_relation", "nature_relation"), "relation_reasoning"),
    **dict.fromkeys(("future_prediction", "structuralized_imagetext_understanding"), "logic_reasoning"),
}
L2_CATEGORIES = frozenset(L2_OF_CATEGORY.values())
score = score_choice


def parse_row(row: dict, cache_dir: Path, roots: list[Path]) -> BenchItem | str:
    """A `BenchItem` from one MMBench row (TSV or parquet), or the reason it is unusable."""
    question, hint = text_of(row, "question"), text_of(row, "hint")
    columns = [text_of(row, letter) for letter in LETTERS]
    options = tuple(columns[: columns.index("")] if "" in columns else columns)
    if not question or len(options) < 2:
        return "no question or options"
    gold = gold_letter(text_of(row, "answer"), options)
    if gold is None:
        return "answer not among the options"
    l2 = text_of(row, "l2-category", "L2-category", "l2_category") or L2_OF_CATEGORY.get(text_of(row, "category"), "")
    if l2 not in L2_CATEGORIES:
        return "unknown category"
    image = stored_image(row.get("image"), cache_dir, roots)
    if isinstance(image, str):
        return image
    text = (f"Hint: {hint}\n" if hint else "") + f"Question: {question}\nOptions:\n{lettered_options(options)}"
    prompt = Prompt(text_of(row, "index"), with_step_format(text), (str(image),), gold)
    return BenchItem(prompt, l2, l2 in REASONING, options)


# The dev files also hold the option rotations of circular evaluation, as rows whose index is the original's plus a
# multiple of 1,000,000 (VLMEvalKit keeps `index < 1e6` as the questions); single-pass accuracy reads the originals.
CIRCULAR_OFFSET = 1_000_000


def _circular_copy(row: object) -> bool:
    index = text_of(row, "index") if isinstance(row, dict) else ""
    return index.isdigit() and int(index) >= CIRCULAR_OFFSET


def load(
    path: str | Path, cache_dir: str | Path, on_bad_row: OnBadRow = OnBadRow.SKIP, limit: int | None = None
) -> tuple[list[BenchItem], LoadReport]:
    """Items from the TSV, a parquet file, or an `lmms-lab/MMBench` snapshot folder (its en/dev files)."""
    source = existing(path)
    if source.suffix == ".tsv":
        rows, roots, fmt = tsv_rows(source), [source.parent], "tsv"
    else:
        files = parquet_files(source, SPLIT, CONFIG)
        rows, roots, fmt = parquet_rows(files), [files[0].parent], "parquet"
    rows = [row for row in rows if not _circular_copy(row)]
    parse = partial(parse_row, cache_dir=Path(cache_dir), roots=roots)
    report = LoadReport(str(source), fmt, SPLIT, image_cache=str(cache_dir))
    return collect_items(report, rows, parse, lambda row: text_of(row, "index"), on_bad_row, limit)
