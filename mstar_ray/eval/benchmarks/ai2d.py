"""AI2D test (Kembhavi et al., 2016) from the Hugging Face parquet `lmms-lab/ai2d`.

Columns: question, options (list), answer (the index of the right option, as a string), image (`datasets.Image`).
The prompt is lmms-eval's (the question, then the lettered options); there are no sub-tasks and no row ids, so an
item's id is its row number. Accuracy is single-pass.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from mstar_ray.config import OnBadRow
from mstar_ray.core.records import Prompt
from mstar_ray.data.formats import LoadReport
from mstar_ray.eval.benchmarks.extract import score_choice
from mstar_ray.eval.benchmarks.items import LETTERS, BenchItem, lettered_options, with_step_format
from mstar_ray.eval.benchmarks.sources import (
    collect_items,
    existing,
    parquet_files,
    parquet_rows,
    stored_image,
    text_of,
)

NAME = "ai2d"
SPLIT = "test"
score = score_choice


def parse_row(row: dict, cache_dir: Path, roots: list[Path]) -> BenchItem | str:
    """A `BenchItem` from one AI2D row (numbered in `row["_row"]`), or the reason it is unusable."""
    question = text_of(row, "question")
    options = tuple(str(o).strip() for o in row.get("options") or ())
    if not question or len(options) < 2:
        return "no question or options"
    answer = text_of(row, "answer")
    if not answer.isdigit() or int(answer) >= len(options):
        return "answer not among the options"
    image = stored_image(row.get("image"), cache_dir, roots)
    if isinstance(image, str):
        return image
    text = with_step_format(f"{question}\n{lettered_options(options)}")
    prompt = Prompt(str(row["_row"]), text, (str(image),), LETTERS[int(answer)])
    return BenchItem(prompt, "", True, options)


def load(
    path: str | Path, cache_dir: str | Path, on_bad_row: OnBadRow = OnBadRow.SKIP, limit: int | None = None
) -> tuple[list[BenchItem], LoadReport]:
    """Test-split items from a parquet file or a Hugging Face snapshot folder."""
    source = existing(path)
    files = parquet_files(source, SPLIT)
    rows = ({"_row": i} | row for i, row in enumerate(parquet_rows(files)))
    parse = partial(parse_row, cache_dir=Path(cache_dir), roots=[files[0].parent])
    report = LoadReport(str(source), "parquet", SPLIT, image_cache=str(cache_dir))
    return collect_items(report, rows, parse, lambda row: str(row["_row"]), on_bad_row, limit)
