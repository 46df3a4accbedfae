"""A synthetic multimodal reasoning task written in the LLaVA / MathV360K format, with its ground truth.

Each image is a grid of coloured cells. The default questions ask how many cells are coloured, which colour is most
frequent (multiple choice), or how many more cells the most frequent colour has than the least frequent one; each
gold chain counts every colour, then combines the counts. A tiny model learns to read those answers off the image
and to write the counts as decoration. The `weighted` kind makes the answer depend on the steps: it gives each
colour a number of points in the text ("Points per cell: red 2, green 1, blue 3. What is the total score of the
grid?"), and the chain reads each count times its points ("Score of red: 2 x 2 = 4."), then sums the scores
(`sums="running"`: one "Add" step per score; `sums="total"`: one "Total: 4 + 4 + 3 = 11." step).

Gold responses use the paper's step format (steps separated by a blank line, then a `# Answer` section) and the step
phrases of `mstar_ray.eval.process`, whose checker marks each step of a response true or false against the row's
`truth` (grid, per-colour counts, question kind, weights). Knobs add a false step to a share of the seed chains (a
miscount that the later steps silently ignore: a flawed chain with a right answer) and a true but irrelevant step;
`step_order="shuffled"` reads the colours in a random order per chain, so that a prompt has more than one sound
response and ranking a prompt's right answers has something to choose between.
Splits: `seed.json` (gold chain of thought), `labeled.json` (answer only), `validation.json`, `test.json` and
optionally `unlabeled.json`, with the PNGs under `images/` and the options in `task.json`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from PIL import Image, ImageDraw

from mstar_ray.eval.process import (
    TASK,
    add_step,
    count_step,
    extremes_step,
    grid_step,
    most_step,
    score_step,
    subtract_step,
    total_step,
)

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
    "purple": (140, 50, 170),
}
EMPTY_RGB = (255, 255, 255)
KINDS = ("weighted", "total", "most", "spread")
SUMS = ("total", "running")
STEP_ORDERS = ("fixed", "shuffled")


@dataclass(frozen=True)
class TaskSpec:
    """Difficulty knobs and split sizes of the synthetic task (written to the data's task.json)."""

    grid_rows: int = 3
    grid_cols: int = 3
    cell_pixels: int = 28  # one Qwen2-VL merged patch (2 x 14 px) per cell
    fill_probability: float = 0.8
    colors: int = 3  # the first this many of PALETTE
    kinds: tuple[str, ...] = ("total", "most", "spread")  # question kinds, drawn uniformly
    max_weight: int = 3  # weighted questions give each colour a weight from 1 to this
    sums: str = "running"  # "running": one "Add" step per term; "total": one step adds every term
    false_step_share: float = 0.0  # seed chains with one miscount that the next step corrects (right answer)
    irrelevant_step_share: float = 0.0  # seed chains that open with a true step no question needs
    step_order: str = "fixed"  # "shuffled": each seed chain reads the colours in its own random order
    seed_size: int = 200
    labeled_size: int = 2000
    validation_size: int = 100
    test_size: int = 300
    unlabeled_size: int = 0  # prompts for the unlabeled pool (written with answers, which the loop ignores)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if not self.kinds or unknown:
            raise ValueError(f"kinds: {sorted(unknown) or 'none'} given; choose from {', '.join(KINDS)}")
        if self.sums not in SUMS:
            raise ValueError(f"sums: {self.sums!r}; choose from {', '.join(SUMS)}")
        if not 2 <= self.colors <= len(PALETTE):
            raise ValueError(f"colors: {self.colors}; between 2 and {len(PALETTE)}")
        if self.step_order not in STEP_ORDERS:
            raise ValueError(f"step_order: {self.step_order!r}; choose from {', '.join(STEP_ORDERS)}")
        if self.max_weight < 1:
            raise ValueError(f"max_weight: {self.max_weight}; at least 1")

    @property
    def palette(self) -> list[str]:
        return list(PALETTE)[: self.colors]


# What `mstar make-data` and `mstar make-model` build unless told otherwise, and so what the quickstart runs on: two
# colours with 1 to 5 points per cell, summed in one Total step. On the default kinds a tiny model reads the answer
# off the image and writes its steps as decoration; here a right answer mostly needs right counts, so self-evolving
# training can be judged by strict accuracy (docs/results.md, "Process correctness", says what each option gave).
QUICKSTART_TASK = TaskSpec(kinds=("weighted",), colors=2, max_weight=5, sums="total", seed_size=1000)


@dataclass(frozen=True)
class Item:
    """One generated question with its gold chain of thought and what generated it."""

    grid: list[list[str | None]]
    question: str
    gold_response: str
    answer: str
    truth: dict


def _question(kind: str, palette: list[str], weights: dict[str, int]) -> str:
    if kind == "weighted":
        points = ", ".join(f"{c} {w}" for c, w in weights.items())
        return f"Points per cell: {points}. What is the total score of the grid?"
    if kind == "total":
        return "How many cells in the grid are colored?"
    if kind == "most":
        choices = "\n".join(f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(palette))
        return f"Which color appears most often in the grid?\nChoices:\n{choices}"
    return "How many more cells does the most frequent color have than the least frequent color?"


def _final_steps(
    kind: str, counts: dict[str, int], weights: dict[str, int], sums: str, order: list[str]
) -> tuple[list[str], str] | None:
    """The steps after the counts (terms added in the colours' reading `order`), and the answer; None when the
    question has no unique answer."""
    if kind in ("total", "weighted"):
        terms = [counts[c] * weights[c] if kind == "weighted" else counts[c] for c in order]
        if sums == "total":
            return [total_step(terms)], str(sum(terms))
        steps, running = [], terms[0]
        for v in terms[1:]:
            steps.append(add_step(running, v))
            running += v
        return steps, str(running)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    if kind == "most":
        if ranked[0][1] == ranked[1][1]:
            return None
        letter = chr(ord("A") + list(counts).index(ranked[0][0]))
        return [most_step(ranked[0][0], letter)], letter
    high, low = ranked[0][1], ranked[-1][1]
    return [extremes_step(high, low), subtract_step(high, low)], str(high - low)


def _reading_steps(
    kind: str, counts: dict[str, int], weights: dict[str, int], miscount: str | None, order: list[str]
) -> list[str]:
    """Each colour's count in the reading `order` (for weighted questions, inside its score step: "Score of red:
    2 x 3 = 6."); `miscount` states a wrong count for one colour that the later steps ignore."""
    steps = []
    for color in order:
        n = counts[color]
        stated = n + 1 if color == miscount and n == 0 else n - 1 if color == miscount else n
        steps.append(score_step(color, stated, weights[color]) if kind == "weighted" else count_step(color, stated))
    return steps


def make_item(spec: TaskSpec, rng: random.Random) -> Item:
    """Draw a random grid and a question about it, with its gold chain (flawed or padded as the knobs say)."""
    palette = spec.palette
    while True:
        grid = [
            [rng.choice(palette) if rng.random() < spec.fill_probability else None for _ in range(spec.grid_cols)]
            for _ in range(spec.grid_rows)
        ]
        counter = Counter(c for row in grid for c in row if c)
        counts = {c: counter[c] for c in palette}
        kind = rng.choice(spec.kinds)
        weights = {c: rng.randint(1, spec.max_weight) for c in palette} if kind == "weighted" else {}
        # Drawn only when a knob is set, so that the default task's data stay as they were before the knobs
        order = rng.sample(palette, len(palette)) if spec.step_order == "shuffled" else palette
        final = _final_steps(kind, counts, weights, spec.sums, order)
        flawed = spec.false_step_share > 0 and rng.random() < spec.false_step_share
        padded = spec.irrelevant_step_share > 0 and rng.random() < spec.irrelevant_step_share
        miscount = rng.choice(palette) if flawed else None
        if final is not None:
            break
    steps, answer = final
    steps = _reading_steps(kind, counts, weights, miscount, order) + steps
    if padded:
        steps = [grid_step(spec.grid_rows, spec.grid_cols)] + steps
    truth = {"task": TASK, "kind": kind, "grid": grid, "counts": counts} | ({"weights": weights} if weights else {})
    question = _question(kind, palette, weights)
    return Item(grid, question, "\n\n".join(steps) + f"\n\n# Answer\n\n{answer}", answer, truth)


def render_grid(grid: list[list[str | None]], cell_pixels: int) -> Image.Image:
    """Draw the grid as an RGB image, one solid square per cell."""
    img = Image.new("RGB", (len(grid[0]) * cell_pixels, len(grid) * cell_pixels), EMPTY_RGB)
    draw = ImageDraw.Draw(img)
    for r, row in enumerate(grid):
        for c, color in enumerate(row):
            if color:
                x, y = c * cell_pixels, r * cell_pixels
                draw.rectangle([x, y, x + cell_pixels - 1, y + cell_pixels - 1], fill=PALETTE[color])
    return img


def _row(item_id: str, image_rel: str, item: Item, with_cot: bool) -> dict:
    return {
        "id": item_id,
        "image": image_rel,
        "conversations": [
            {"from": "human", "value": f"<image>\n{item.question}"},
            {"from": "gpt", "value": item.gold_response if with_cot else item.answer},
        ],
        "truth": item.truth,
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
    (out / "task.json").write_text(json.dumps({"task": TASK, "seed": seed} | asdict(spec), indent=1))
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


def read_task_spec(data_dir: str | Path) -> TaskSpec:
    """The options a synthetic dataset was written with (its task.json)."""
    path = Path(data_dir) / "task.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; `mstar make-data` writes it beside the splits")
    options = json.loads(path.read_text())
    known = {f.name for f in fields(TaskSpec)}  # task.json also names the task and the seed
    return TaskSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if k in known})


def corpus_texts(spec: TaskSpec | None = None, n: int = 2000, seed: int = 1) -> list[str]:
    """Questions and gold responses of the task, for training the tiny model's tokenizer."""
    spec = spec or TaskSpec()
    rng = random.Random(seed)
    items = [make_item(spec, rng) for _ in range(n)]
    return [t for it in items for t in (it.question, it.gold_response)] + ["user assistant system"]
