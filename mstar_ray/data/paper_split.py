"""`mstar split`: one source dataset into the labeled, unlabeled, validation and test sets of a run (docs/recipe.md,
Data).

The usable prompts are shuffled with the seed and split into a labeled share and an unlabeled rest; the in-domain
test set, then the validation set, are taken from the unlabeled rest, whose remainder is the unlabeled pool. Each
set is written as LLaVA JSON with absolute image paths (so the files work from any directory) and the gold answer
(unlabeled rows keep it too: the loop ignores it except to measure pseudo-label agreement).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from mstar_ray.config import DataColumnsConfig, OnBadRow
from mstar_ray.core.records import Prompt
from mstar_ray.data.formats import load_prompts
from mstar_ray.data.llava import llava_row

SETS = ("labeled", "unlabeled", "validation", "test")


@dataclass(frozen=True)
class SplitSizes:
    """How many prompts go into each set, from the flags of `mstar split`."""

    test: int = 750
    validation: int = 250
    labeled_share: float = 0.5

    def assign(self, prompts: list[Prompt], source: str) -> dict[str, list[Prompt]]:
        """The sets of already shuffled prompts; raises `ValueError` naming the flag when they do not fit."""
        if not 0 < self.labeled_share < 1:
            raise ValueError(f"--labeled-share must be between 0 and 1, got {self.labeled_share}")
        if self.test < 0 or self.validation < 1:
            raise ValueError(f"--test must be 0 or more and --validation 1 or more ({self.test}, {self.validation})")
        num_labeled = int(len(prompts) * self.labeled_share)
        rest = prompts[num_labeled:]
        held_out = self.test + self.validation
        if num_labeled < 1 or held_out > len(rest):
            raise ValueError(
                f"{source} has {len(prompts)} usable prompts: {num_labeled} labeled (--labeled-share "
                f"{self.labeled_share}) and {len(rest)} unlabeled, too few for --test {self.test} plus --validation "
                f"{self.validation} ({held_out}) and at least one labeled prompt; lower --test / --validation"
            )
        return {
            "labeled": prompts[:num_labeled],
            "unlabeled": rest[held_out:],
            "validation": rest[self.test : held_out],
            "test": rest[: self.test],
        }


def split_dataset(
    source: str,
    out: str | Path,
    sizes: SplitSizes,
    seed: int = 0,
    image_root: str | None = None,
    on_bad_row: OnBadRow = OnBadRow.SKIP,
    columns: DataColumnsConfig | None = None,
    image_cache: str | None = None,
) -> dict:
    """Load `source` (any format `load_prompts` reads), split it and write the sets and `split_report.json`.

    Returns the split report: files written, counts per set, seed, and the load report with skipped rows.
    """
    prompts, load_report = load_prompts(source, image_root, on_bad_row, True, True, columns, image_cache)
    order = list(prompts)
    random.Random(seed).shuffle(order)
    sets = sizes.assign(order, source)
    folder = Path(out).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in SETS:
        files[name] = str(folder / f"{name}.json")
        Path(files[name]).write_text(json.dumps([llava_row(p) for p in sets[name]], ensure_ascii=False))
    report = {
        "source": source,
        "seed": seed,
        "labeled_share": sizes.labeled_share,
        "counts": {name: len(sets[name]) for name in SETS},
        "files": files,
        "load": load_report.to_dict(),
    }
    (folder / "split_report.json").write_text(json.dumps(report, indent=2))
    return report


def config_overrides(report: dict) -> list[str]:
    """The `data.*=PATH` overrides that point a run at the written sets (empty sets left out)."""
    return [f"data.{name}={report['files'][name]}" for name in SETS if report["counts"][name]]
