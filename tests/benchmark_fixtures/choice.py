"""The multiple-choice benchmarks: M3CoT, MMStar (parquet and TSV), MMBench (TSV and parquet), AI2D."""

from __future__ import annotations

from pathlib import Path

from datasets import Features, Image, List, Value

from benchmark_fixtures.common import NOT_AN_IMAGE, b64, embedded, image_bytes, write_parquet, write_tsv

# ---------------------------------------------------------------- M3CoT (LightChen2333/M3CoT)

M3COT_FEATURES = Features(
    {
        "id": Value("string"),
        "category": Value("string"),
        "image_id": Value("string"),
        "question": Value("string"),
        "choices": List(Value("string")),
        "context": Value("string"),
        "answer": Value("string"),
        "rationale": Value("string"),
        "split": Value("string"),
        "image": Image(),
        "domain": Value("string"),
        "topic": Value("string"),
    }
)

# (id, question, choices, context, answer, domain, topic, has image)
_M3COT = [
    ("physical-commonsense-1342", "What is the primary business of the truck?",
     ["Selling clothing", "Selling food", "Selling books", "Selling electronics"], "", "B", "commonsense",
     "physical-commonsense", True),
    ("physics-1074", "Which property do these three objects have in common?", ["fragile", "sticky", "fuzzy"],
     "Select the best answer.", "C", "science", "natural-science", True),
    ("algebra-12", "What is the value of x in the figure?", ["3", "4", "5", "6"], "", "A", "mathematics",
     "algebra", True),
    ("geometry-40", "Which angle is the largest?", ["angle A", "angle B", "angle C", "angle D"], "", "D",
     "mathematics", "geometry", True),
    ("social-science-7", "Which country is highlighted?", ["Fiji", "Tonga", "Samoa", "Nauru"], "", "E", "science",
     "social-science", True),
    ("temporal-commonsense-3", "What happens next?", ["It rains", "It snows"], "", "A", "commonsense",
     "temporal-commonsense", False),
]  # fmt: skip


def _m3cot_row(spec: tuple, index: int, split: str) -> dict:
    rid, question, choices, context, answer, domain, topic, has_image = spec
    return {
        "id": rid,
        "category": "fixture",
        "image_id": str(index),
        "question": question,
        "choices": choices,
        "context": context,
        "answer": answer,
        "rationale": "Look at the image.",
        "split": split,
        "image": embedded(image_bytes(100 + index) if has_image else None),
        "domain": domain,
        "topic": topic,
    }


def write_m3cot(root: Path) -> Path:
    """A Hugging Face snapshot with test and validation parquet files (only test is evaluated)."""
    rows = [_m3cot_row(s, i, "test") for i, s in enumerate(_M3COT)]
    write_parquet(root / "data" / "test-00000-of-00001.parquet", rows, M3COT_FEATURES)
    write_parquet(root / "data" / "validation-00000-of-00001.parquet", [_m3cot_row(_M3COT[0], 50, "dev")],
                   M3COT_FEATURES)  # fmt: skip
    return root


# ---------------------------------------------------------------- MMStar (Lin-Chen/MMStar, VLMEvalKit MMStar.tsv)

MMSTAR_FEATURES = Features(
    {
        "index": Value("int64"),
        "question": Value("string"),
        "image": Image(),
        "answer": Value("string"),
        "category": Value("string"),
        "l2_category": Value("string"),
        "meta_info": {"source": Value("string"), "split": Value("string"), "image_path": Value("string")},
    }
)

# (question stem, options, answer, category, l2 category, has image)
_MMSTAR = [
    ("Which option describe the object relationship in the image correctly?",
     ["The suitcase is on the book.", "The suitcase is beneath the cat.", "The suitcase is beneath the bed.",
      "The suitcase is beneath the book."], "A", "coarse perception", "image scene and topic", True),
    ("How many apples are there in the image?", ["4", "3", "2", "1"], "B", "fine-grained perception",
     "object counting", True),
    ("What is the man on the left holding?", ["a cup", "a phone", "a book", "nothing"], "C", "instance reasoning",
     "single-instance reasoning", True),
    ("Which shape comes next in the sequence?", ["circle", "square", "triangle", "star"], "D", "logical reasoning",
     "diagram reasoning", True),
    ("What is the area of the triangle?", ["6", "8", "10", "12"], "A", "math", "geometry", True),
    ("Which material conducts electricity?", ["copper, a metal", "rubber", "glass", "wood"], "A",
     "science & technology", "electronics & energy & mechanical eng.", True),
    ("What color is the sky?", ["blue", "green", "red", "black"], "A", "coarse perception", "image emotion", False),
]  # fmt: skip


def _inline_options(options: list[str]) -> str:
    return "Options: " + ", ".join(f"{chr(65 + i)}: {o}" for i, o in enumerate(options))


def write_mmstar_parquet(root: Path) -> Path:
    """The Hugging Face repo: mmstar.parquet (config mmstar, split val) with the options inside the question."""
    rows = [
        {
            "index": i,
            "question": f"{stem}\n{_inline_options(options)}",
            "image": embedded(image_bytes(200 + i) if has_image else None),
            "answer": answer,
            "category": category,
            "l2_category": l2,
            "meta_info": {"source": "fixture", "split": "val", "image_path": f"images/{i}.jpg"},
        }
        for i, (stem, options, answer, category, l2, has_image) in enumerate(_MMSTAR)
    ]
    write_parquet(root / "mmstar.parquet", rows, MMSTAR_FEATURES)
    return root


def write_mmstar_tsv(root: Path) -> Path:
    """VLMEvalKit's MMStar.tsv: options in columns A-D, base64 images (an empty image cell for the bad row)."""
    header = ["index", "question", "A", "B", "C", "D", "answer", "category", "l2-category", "image"]
    rows = []
    for i, (stem, options, answer, category, l2, has_image) in enumerate(_MMSTAR):
        row = {"index": i, "question": stem, "answer": answer, "category": category, "l2-category": l2}
        row |= {chr(65 + k): o for k, o in enumerate(options)}
        rows.append(row | {"image": b64(image_bytes(200 + i)) if has_image else ""})
    return write_tsv(root / "MMStar.tsv", header, rows)


# ---------------------------------------------------------------- MMBench (MMBench_DEV_EN_V11.tsv, lmms-lab/MMBench)

# (question, hint, options, answer, category, l2-category, image: seed, "ref:<index>" or "corrupt")
_MMBENCH = [
    ("Which scene category matches this image the best?", "", ["rock_arch", "train_interior", "shopfront",
     "office_cubicles"], "A", "image_scene", "coarse_perception", 300),
    ("What is the text in the image?", "", ["STOP", "GO", "EXIT", "OPEN"], "B", "ocr",
     "finegrained_perception (instance-level)", 301),
    ("Where is the cat relative to the dog?", "", ["left", "right", "above", "below"], "C", "spatial_relationship",
     "finegrained_perception (cross-instance)", 302),
    ("Which property do these objects have in common?", "Select the best answer.", ["hard", "soft", "stretchy", ""],
     "C", "physical_property_reasoning", "attribute_reasoning", 303),
    ("What is the relation between the two people?", "", ["friends", "siblings", "colleagues", "strangers"], "A",
     "social_relation", "relation_reasoning", "ref:3"),
    ("What will happen next?", "The ball is rolling down the hill.", ["it stops", "it flies", "it speeds up",
     "it keeps rolling"], "D", "future_prediction", "logic_reasoning", 305),
    ("What is shown?", "", ["a", "b", "c", "d"], "A", "image_topic", "coarse_perception", "corrupt"),
    ("Which one is heavier?", "", ["the rock", "the feather", "", ""], "D", "physical_relation",
     "relation_reasoning", 307),
]  # fmt: skip
MMBENCH_TSV_HEADER = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
                      "l2-category", "comment", "split"]  # fmt: skip


def _mmbench_image(spec_image: int | str) -> bytes:
    return NOT_AN_IMAGE if spec_image == "corrupt" else image_bytes(int(spec_image))


def write_mmbench_tsv(root: Path) -> Path:
    """MMBench_DEV_EN_V11.tsv: empty option cells, "nan"-free hints, one image given by another row's index."""
    rows = []
    for i, (question, hint, options, answer, category, l2, image) in enumerate(_MMBENCH):
        cell = image.removeprefix("ref:") if isinstance(image, str) and image.startswith("ref:") else None
        row = {"index": i, "question": question, "hint": hint, "answer": answer, "category": category}
        row |= {chr(65 + k): o for k, o in enumerate(options)}
        row |= {"image": cell or b64(_mmbench_image(image)), "source": "fixture", "l2-category": l2}
        rows.append(row | {"comment": "", "split": "dev"})
    # A circular-evaluation rotation of question 5 (options shifted by one, image given by the original's index).
    rotated = rows[5] | {"index": 1_000_005, "A": rows[5]["D"], "B": rows[5]["A"], "C": rows[5]["B"], "D": rows[5]["C"]}
    rows.append(rotated | {"answer": "A", "image": "5"})
    return write_tsv(root / "MMBench_DEV_EN_V11.tsv", MMBENCH_TSV_HEADER, rows)


MMBENCH_FEATURES = Features(
    {
        "index": Value("int64"),
        "question": Value("string"),
        "hint": Value("string"),
        "answer": Value("string"),
        "A": Value("string"),
        "B": Value("string"),
        "C": Value("string"),
        "D": Value("string"),
        "category": Value("string"),
        "image": Image(),
        "source": Value("string"),
        "L2-category": Value("string"),
        "comment": Value("string"),
        "split": Value("string"),
    }
)


def write_mmbench_parquet(root: Path) -> Path:
    """The lmms-lab/MMBench layout: en/dev-*.parquet (and a cn config that must not be read); hints and missing
    options are nulls."""
    rows = []
    for i, (question, hint, options, answer, category, l2, image) in enumerate(_MMBENCH):
        data = _mmbench_image(303 if image == "ref:3" else image)
        row = {"index": i, "question": question, "hint": hint or None, "answer": answer, "category": category}
        row |= {chr(65 + k): o or None for k, o in enumerate(options)}
        rows.append(row | {"image": embedded(data), "source": "fixture", "L2-category": l2, "comment": None,
                           "split": "dev"})  # fmt: skip
    write_parquet(root / "en" / "dev-00000-of-00001.parquet", rows, MMBENCH_FEATURES)
    write_parquet(root / "cn" / "dev-00000-of-00001.parquet", rows[:1], MMBENCH_FEATURES)
    return root


# ---------------------------------------------------------------- AI2D (lmms-lab/ai2d)

AI2D_FEATURES = Features(
    {"question": Value("string"), "options": List(Value("string")), "answer": Value("string"), "image": Image()}
)
_AI2D = [
    ("Which stage comes after the egg?", ["larva", "adult", "pupa", "egg"], "0"),
    ("What does the diagram show?", ["the water cycle", "the moon phases", "a food web", "the rock cycle"], "2"),
    ("Which planet is closest to the sun?", ["Venus", "Mercury", "Earth", "Mars"], "1"),
    ("How many legs does the insect have?", ["4", "6", "8", "10"], "5"),
]


def write_ai2d(root: Path) -> Path:
    """A Hugging Face snapshot: data/test-*.parquet; the answer is the right option's index as a string."""
    rows = [
        {"question": q, "options": options, "answer": answer, "image": embedded(image_bytes(400 + i))}
        for i, (q, options, answer) in enumerate(_AI2D)
    ]
    write_parquet(root / "data" / "test-00000-of-00001.parquet", rows, AI2D_FEATURES)
    return root


# What each fixture should load: (items kept, {skip reason: count}).
