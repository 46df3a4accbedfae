"""MathVista testmini: the Hugging Face parquet snapshot and the GitHub `testmini.json` + `images/` layout."""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Features, Image, List, Value

from benchmark_fixtures.common import NOT_AN_IMAGE, embedded, image_bytes, write_parquet

MATHVISTA_FEATURES = Features(
    {
        "pid": Value("string"),
        "question": Value("string"),
        "image": Value("string"),
        "decoded_image": Image(),
        "choices": List(Value("string")),
        "unit": Value("string"),
        "precision": Value("float64"),
        "answer": Value("string"),
        "question_type": Value("string"),
        "answer_type": Value("string"),
        "metadata": {
            "category": Value("string"),
            "context": Value("string"),
            "grade": Value("string"),
            "img_height": Value("int64"),
            "img_width": Value("int64"),
            "language": Value("string"),
            "skills": List(Value("string")),
            "source": Value("string"),
            "split": Value("string"),
            "task": Value("string"),
        },
        "query": Value("string"),
    }
)

# (pid, question, choices, unit, precision, answer, question_type, answer_type, task, image)
_MATHVISTA = [
    (
        "1",
        "How many bars have values smaller than 6?",
        None,
        None,
        None,
        "4",
        "free_form",
        "integer",
        "figure question answering",
        "ok",
    ),
    (
        "2",
        "Find $m\\angle H$",
        ["97", "102", "107", "122"],
        None,
        None,
        "97",
        "multi_choice",
        "text",
        "geometry problem solving",
        "ok",
    ),
    (
        "3",
        "By what distance $d$ is the spring compressed?",
        None,
        None,
        1.0,
        "1.2",
        "free_form",
        "float",
        "textbook question answering",
        "ok",
    ),
    (
        "4",
        "Subtract all red things. How many objects are left?",
        None,
        None,
        None,
        "5",
        "free_form",
        "integer",
        "math word problem",
        "ok",
    ),
    (
        "5",
        "what is the total volume of the measuring cup?",
        None,
        "g",
        None,
        "1000",
        "free_form",
        "integer",
        "visual question answering",
        "ok",
    ),
    (
        "6",
        "Which organism with be most affected if algae was eliminated?",
        ["Tilapia", "Common water flea", "Great diving beetle", "Tadpole"],
        None,
        None,
        "Common water flea",
        "multi_choice",
        "text",
        "textbook question answering",
        "ok",
    ),
    (
        "7",
        "What is the ratio of the smallest bar to the largest?",
        None,
        None,
        2.0,
        "0.25",
        "free_form",
        "float",
        "figure question answering",
        "ok",
    ),
    (
        "8",
        "Which years have values above 50?",
        None,
        None,
        None,
        "[2007, 2008]",
        "free_form",
        "list",
        "figure question answering",
        "ok",
    ),
    (
        "9",
        "Is this function continuous at each point?",
        ["Yes", "No"],
        None,
        None,
        "No",
        "multi_choice",
        "text",
        "visual question answering",
        "ok",
    ),
    (
        "10",
        "How many people are in the image?",
        None,
        None,
        None,
        "2",
        "free_form",
        "integer",
        "visual question answering",
        "missing",
    ),
    (
        "11",
        "What is the perimeter of the shape?",
        None,
        "cm",
        None,
        "",
        "free_form",
        "integer",
        "geometry problem solving",
        "ok",
    ),
    ("12", "How many dots are there?", None, None, None, "7", "free_form", "integer", "math word problem", "corrupt"),
]
_ASK = "Hint: Please answer the question"
_HINTS = {
    "multi_choice": f"{_ASK} and provide the correct option letter, e.g., A, B, C, D, at the end.",
    "integer": f"{_ASK} requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.",
    "float": f"{_ASK} requiring a floating-point number with one decimal place and provide the final value, "
    "e.g., 1.2, 1.3, 1.4, at the end.",
    "list": f"{_ASK} requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], "
    "[1.2, 1.3, 1.4], at the end.",
}


def _mathvista_problem(spec: tuple) -> dict:
    pid, question, choices, unit, precision, answer, qtype, atype, task, _ = spec
    query = _HINTS[qtype if qtype == "multi_choice" else atype] + f"\nQuestion: {question}"
    if unit:
        query += f" (Unit: {unit})"
    if choices:
        query += "\nChoices:\n" + "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
    metadata = {
        "category": "math-targeted-vqa",
        "context": "bar chart",
        "grade": "high school",
        "img_height": 32,
        "img_width": 40,
        "language": "english",
        "skills": ["arithmetic reasoning"],
        "source": "fixture",
        "split": "testmini",
        "task": task,
    }
    return {
        "pid": pid,
        "question": question,
        "image": f"images/{pid}.jpg",
        "choices": choices,
        "unit": unit,
        "precision": precision,
        "answer": answer,
        "question_type": qtype,
        "answer_type": atype,
        "metadata": metadata,
        "query": query,
    }


def _mathvista_image(spec: tuple) -> bytes | None:
    kind = spec[-1]
    return {"ok": image_bytes(int(spec[0]), "JPEG"), "missing": None, "corrupt": NOT_AN_IMAGE}[kind]


def write_mathvista_parquet(root: Path) -> Path:
    """A Hugging Face snapshot: data/testmini-*.parquet (and a test split that must not be read)."""
    rows = [_mathvista_problem(s) | {"decoded_image": embedded(_mathvista_image(s))} for s in _MATHVISTA]
    write_parquet(root / "data" / "testmini-00000-of-00001-725687bf7a18d64b.parquet", rows, MATHVISTA_FEATURES)
    other = _mathvista_problem(("1001", "Held-out test question?", None, None, None, "", "free_form", "integer",
                                "math word problem", "ok"))  # fmt: skip
    other["decoded_image"] = embedded(image_bytes(1001, "JPEG"))
    write_parquet(root / "data" / "test-00000-of-00002-6a611c71596db30f.parquet", [other], MATHVISTA_FEATURES)
    return root


def write_mathvista_json(root: Path) -> Path:
    """The GitHub layout: testmini.json (pid -> problem, no decoded_image or query) beside images/<pid>.jpg."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    problems = {}
    for spec in _MATHVISTA:
        problem = _mathvista_problem(spec)
        del problem["query"]
        if problem["precision"] is not None:
            problem["precision"] = int(problem["precision"])
        problems[problem["pid"]] = problem
        data = _mathvista_image(spec)
        if data is not None:
            (root / problem["image"]).write_bytes(data)
    (root / "testmini.json").write_text(json.dumps(problems, indent=4))
    return root / "testmini.json"
