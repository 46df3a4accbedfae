"""A synthetic multimodal reasoning task written in the LLaVA / MathV360K format.

Each image is a grid of coloured cells. Questions ask how many cells are coloured, which colour is most
frequent (multiple choice), or how many more cells the most frequent colour has than the least frequent one.
They can only be answered by reading the image, take four or five steps (count each colour, then combine),
and have rule-checkable answers. Gold responses use the paper's step format (steps separated by a blank line,
then a `# Answer` section). Splits: `seed.json` (gold chain of thought), `labeled.json` (answer only),
`validation.json`, `test.json` and optionally `unlabeled.json`, with the PNGs under `images/`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
}
EMPTY_RGB = (255, 255, 255)
LETTERS = "ABC"
QUESTIONS = {
    "total": "How many cells in the grid are colored?",
    "most": "Which color appears most often in the grid?\nChoices:\n"
    + "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(COLORS)),
    "spread": "How many more cells does the most frequent color have than the least frequent color?",
}


@dataclass(frozen=True)
class TaskSpec:
    """Difficulty knobs and split sizes of the synthetic task."""

    grid_rows: int = 3
    grid_cols: int = 3
    cell_pixels: int = 28  # one Qwen2-VL merged patch (2 x 14 px) per cell
    fill_probability: float = 0.8
    seed_size: int = 200
    labeled_size: int = 2000
    validation_size: int = 100
    test_size: int = 300
    unlabeled_size: int = 0  # prompts for the unlabeled pool (written with answers, which the loop ignores)


@dataclass(frozen=True)
class Item:
    """One generated question with its gold chain of thought."""

    grid: list[list[str | None]]
    question: str
    gold_response: str
    answer: str


def _count_step(color: str, n: int) -> str:
    return f"Count the {color} cells: there {'is' if n == 1 else 'are'} {n}."


def _final_steps(kind: str, counts: dict[str, int]) -> tuple[list[str], str] | None:
    values = list(counts.values())
    if kind == "total":
        steps, running = [], values[0]
        for v in values[1:]:
            steps.append(f"Add: {running} + {v} = {running + v}.")
            running += v
        return steps, str(running)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    if kind == "most":
        if ranked[0][1] == ranked[1][1]:
            return None  # no unique answer
        letter = LETTERS[list(counts).index(ranked[0][0])]
        return [f"The most frequent color is {ranked[0][0]}, option ({letter})."], letter
    high, low = ranked[0][1], ranked[-1][1]
    return [
        f"The largest count is {high} and the smallest is {low}.",
        f"Subtract: {high} - {low} = {high - low}.",
    ], str(high - low)


def make_item(spec: TaskSpec, rng: random.Random) -> Item:
    """Draw a random grid and a question about it."""
    while True:
        grid = [
            [rng.choice(list(COLORS)) if rng.random() < spec.fill_probability else None for _ in range(spec.grid_cols)]
            for _ in range(spec.grid_rows)
        ]
        counter = Counter(c for row in grid for c in row if c)
        counts = {c: counter[c] for c in COLORS}
        kind = rng.choice(list(QUESTIONS))
        final = _final_steps(kind, counts)
        if final is None:
            continue
        steps, answer = final
        steps = [_count_step(c, n) for c, n in counts.items()] + steps
        return Item(grid, QUESTIONS[kind], "\n\n".join(steps) + f"\n\n# Answer\n\n{answer}", answer)


def render_grid(grid: list[list[str | None]], cell_pixels: int) -> Image.Image:
    """Draw the grid as an RGB image, one solid square per cell."""
    img = Image.new("RGB", (len(grid[0]) * cell_pixels, len(grid) * cell_pixels), EMPTY_RGB)
    draw = ImageDraw.Draw(img)
    for r, row in enumerate(grid):
        for c, color in enumerate(row):
            if color:
                x, y = c * cell_pixels, r * cell_pixels
                draw.rectangle([x, y, x + cell_pixels - 1, y + cell_pixels - 1], fill=COLORS[color])
    return img


def _row(item_id: str, image_rel: str, item: Item, with_cot: bool) -> dict:
    return {
        "id": item_id,
        "image": image_rel,
        "conversations": [
            {"from": "human", "value": f"<image>\n{item.question}"},
            {"from": "gpt", "value": item.gold_response if with_cot else item.answer},
        ],
    }


def write_synthetic_dataset(out_dir: str | Path, spec: TaskSpec | None = None, seed: int = 0) -> dict[str, Path]:
    """Generate all splits as LLaVA-style JSON files plus PNG images; returns split name -> JSON path."""
    spec = spec or TaskSpec()
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    sizes = {"seed": spec.seed_size, "labeled": spec.labeled_size, "validation": spec.validation_size}
    sizes["test"] = spec.test_size
    if spec.unlabeled_size:  # drawn after the other splits, so adding it leaves them unchanged
        sizes["unlabeled"] = spec.unlabeled_size
    paths: dict[str, Path] = {}
    for split, size in sizes.items():
        rows = []
        for i in range(size):
            item, item_id = make_item(spec, rng), f"{split}-{i:06d}"
            image_rel = f"images/{item_id}.png"
            render_grid(item.grid, spec.cell_pixels).save(out / image_rel)
            rows.append(_row(item_id, image_rel, item, with_cot=split == "seed"))
        paths[split] = out / f"{split}.json"
        paths[split].write_text(json.dumps(rows, indent=1))
    return paths


def corpus_texts(spec: TaskSpec | None = None, n: int = 2000, seed: int = 1) -> list[str]:
    """Questions and gold responses of the task, for training the tiny model's tokenizer."""
    spec = spec or TaskSpec()
    rng = random.Random(seed)
    items = [make_item(spec, rng) for _ in range(n)]
    return [t for it in items for t in (it.question, it.gold_response)] + ["user assistant system"]
