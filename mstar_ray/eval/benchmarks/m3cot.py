"""M3CoT (Chen et al., ACL 2024), test split, from the Hugging Face parquet `LightChen2333/M3CoT`.

Columns: id, category, image_id, question, choices (list), context, answer (a letter), rationale, split,
image (`datasets.Image`), domain (science / commonsense / mathematics), topic. The prompt lays out context,
question and choices as the authors' evaluation does ("[Context]", "[Question]", "[Choices]"); sub-tasks are the
domains. Accuracy is single-pass (the gold letter against the chosen one).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from mstar_ray.config import OnBadRow
from mstar_ray.core.records import Prompt
from mstar_ray.data.formats import LoadReport
from mstar_ray.eval.benchmarks.extract import score_choice
from mstar_ray.eval.benchmarks.items import BenchItem, gold_letter, lettered_options, with_step_format
from mstar_ray.eval.benchmarks.sources import (
    collect_items,
    existing,
    parquet_files,
    parquet_rows,
    stored_image,
    text_of,
)

NAME = "m3cot"
SPLIT = "test"
score = score_choice


def parse_row(row: dict, cache_dir: Path, roots: list[Path]) -> BenchItem | str:
    """A `BenchItem` from one M3CoT row, or the reason it is unusable."""
    question, context = text_of(row, "question"), text_of(row, "context")
    options = tuple(str(c).strip() for c in row.get("choices") or ())
    if not question or len(options) < 2:
        return "no question or options"
    gold = gold_letter(text_of(row, "answer"), options)
    if gold is None:
        return "answer not among the options"
    image = stored_image(row.get("image"), cache_dir, roots)
    if isinstance(image, str):
        return image
    text = (f"[Context]\n{context}\n\n" if context else "") + f"[Question]\n{question}\n[Choices]\n"
    prompt = Prompt(text_of(row, "id"), with_step_format(text + lettered_options(options)), (str(image),), gold)
    return BenchItem(prompt, text_of(row, "domain"), True, options)


def load(
    path: str | Path, cache_dir: str | Path, on_bad_row: OnBadRow = OnBadRow.SKIP, limit: int | None = None
) -> tuple[list[BenchItem], LoadReport]:
    """Test-split items from a parquet file or a Hugging Face snapshot folder."""
    source = existing(path)
    files = parquet_files(source, SPLIT)
    parse = partial(parse_row, cache_dir=Path(cache_dir), roots=[files[0].parent])
    report = LoadReport(str(source), "parquet", SPLIT, image_cache=str(cache_dir))
    return collect_items(report, parquet_rows(files), parse, lambda row: text_of(row, "id"), on_bad_row, limit)
