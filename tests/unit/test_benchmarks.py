"""The paper's benchmarks read from their published layouts: prompts, bad rows, extraction and scoring, summaries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from benchmark_fixtures import (
    EXPECTED,
    write_ai2d,
    write_m3cot,
    write_mathvista_json,
    write_mathvista_parquet,
    write_mmbench_parquet,
    write_mmbench_tsv,
    write_mmstar_parquet,
    write_mmstar_tsv,
)

from mstar_ray.cli import _benchmark_overrides, build_parser, main
from mstar_ray.config import ConfigError, OnBadRow
from mstar_ray.config.io import load_config
from mstar_ray.core.records import Prompt, PromptRollouts, Sample
from mstar_ray.core.sampling import SamplingParams
from mstar_ray.data.formats import BadRowError
from mstar_ray.eval.benchmarks.extract import numbers_in, response_letter
from mstar_ray.eval.benchmarks.items import BenchItem
from mstar_ray.eval.benchmarks.mmstar import split_inline_options
from mstar_ray.eval.benchmarks.registry import BENCHMARKS
from mstar_ray.eval.benchmarks.results import TableRow, benchmark_table, score_items, summarize
from mstar_ray.eval.benchmarks.runner import evaluate_benchmarks, load_benchmarks

WRITERS = {
    "mathvista": write_mathvista_parquet,
    "m3cot": write_m3cot,
    "mmstar": write_mmstar_parquet,
    "mmbench": write_mmbench_tsv,
    "ai2d": write_ai2d,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("benchmarks")
    written = {name: write(root / name) for name, write in WRITERS.items()}
    written["mathvista_json"] = write_mathvista_json(root / "mathvista_github")
    written["mmstar_tsv"] = write_mmstar_tsv(root / "mmstar_vlmevalkit")
    written["mmbench_parquet"] = write_mmbench_parquet(root / "mmbench_lmms_lab")
    return written


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("image_cache")


def load(name: str, path: Path, cache: Path, **kwargs) -> list[BenchItem]:
    items, report = BENCHMARKS[name].load(path, cache, **kwargs)
    return items


def by_id(items: Sequence[BenchItem]) -> dict[str, BenchItem]:
    return {item.prompt.id: item for item in items}


@pytest.mark.parametrize("name", list(WRITERS))
def test_each_layout_loads_with_bad_rows_counted(name: str, files: dict[str, Path], cache: Path) -> None:
    items, report = BENCHMARKS[name].load(files[name], cache)
    kept, skipped = EXPECTED[name]
    assert report.loaded == len(items) == kept and dict(report.skipped) == skipped
    assert report.format == ("tsv" if name == "mmbench" else "parquet") and report.image_cache == str(cache)
    for item in items:
        assert len(item.prompt.images) == 1 and Path(item.prompt.images[0]).is_absolute()
        assert Path(item.prompt.images[0]).is_file()
        assert 'leaving a blank line between steps. Then write a line "# Answer", a blank line, and ' in (
            item.prompt.question
        )
        if item.options:
            assert item.prompt.question.endswith("and the letter of the correct option.")
            assert item.prompt.answer in "ABCDEFGHIJ"[: len(item.options)]
            assert "\n(A) " + item.options[0] + "\n(B) " + item.options[1] in item.prompt.question


def test_mathvista_prompts_tasks_and_split(files: dict[str, Path], cache: Path) -> None:
    items = by_id(load("mathvista", files["mathvista"], cache))
    assert "1001" not in items  # the test split beside testmini is not read
    assert {i.subtask for i in items.values()} == {"FQA", "GPS", "MWP", "TQA", "VQA"}
    assert items["2"].prompt.question.startswith("Question: Find $m\\angle H$\nChoices:\n(A) 97\n(B) 102")
    assert items["2"].prompt.answer == "A" and items["6"].prompt.answer == "B"
    assert items["5"].prompt.question.startswith("Question: what is the total volume of the measuring cup? (Unit: g)")
    assert items["5"].options == () and items["5"].answer_type == "integer" and items["5"].prompt.answer == "1000"
    assert items["3"].precision == 1 and "one decimal place" in items["3"].prompt.question
    assert items["8"].answer_type == "list" and "Python list" in items["8"].prompt.question


def test_mathvista_github_json_matches_the_hub_parquet(files: dict[str, Path], cache: Path) -> None:
    hub = load("mathvista", files["mathvista"], cache)
    github, report = BENCHMARKS["mathvista"].load(files["mathvista_json"], cache)
    assert dict(report.skipped) == EXPECTED["mathvista"][1]
    assert [(i.prompt.id, i.prompt.question, i.prompt.answer, i.precision) for i in github] == [
        (i.prompt.id, i.prompt.question, i.prompt.answer, i.precision) for i in hub
    ]
    assert Path(github[0].prompt.images[0]).parent == files["mathvista_json"].parent / "images"
    assert by_id(load("mathvista", files["mathvista_json"].parent, cache))["1"].prompt.answer == "4"  # the folder


@pytest.mark.parametrize(
    ("pid", "response", "prediction", "correct"),
    [
        ("1", "Count the bars.\n\nFour are below 6.\n\n# Answer\n\n4", "4", True),
        ("1", "# Answer\n\n4.0", "4", True),
        ("1", "# Answer\n\n5", "5", False),
        ("1", "First 3 bars, then 1 more, so 4 bars in all.", "4", True),  # no heading: the last number
        ("1", "I cannot tell.", None, False),
        ("5", "# Answer\n\n1,000 g", "1000", True),  # thousands separator and unit
        ("3", "# Answer\n\n$d = 1.23$ m", "1.2", True),  # rounded to precision 1
        ("3", "# Answer\n\n1.26", "1.3", False),
        ("7", "# Answer\n\n\\frac{1}{4}", "0.25", True),
        ("7", "# Answer\n\n0.3", "0.3", False),
        ("8", "# Answer\n\n[2007, 2008]", "[2007, 2008]", True),
        ("8", "# Answer\n\n[2008, 2007]", "[2008, 2007]", False),
        ("8", "The years are [2007, 2008].", "[2007, 2008]", True),
        ("2", "# Answer\n\nA", "A", True),
        ("2", "# Answer\n\n(B) 102", "B", False),
        ("2", "# Answer\n\n97", "A", True),  # the option's text
        ("2", "# Answer\n\n96 degrees", "A", True),  # no option named: the nearest by edit distance, as officially
        ("2", "The answer is (D).", "D", False),
        ("6", "# Answer\n\nCommon water flea", "B", True),
        ("9", "# Answer\n\nno", "B", True),
    ],
)
def test_mathvista_scoring(
    pid: str, response: str, prediction: str | None, correct: bool, files: dict[str, Path], cache: Path
) -> None:
    item = by_id(load("mathvista", files["mathvista"], cache))[pid]
    assert BENCHMARKS["mathvista"].score(item, response) == (prediction, correct)


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("Step one.\n\n# Answer\n\nB", "B"),
        ("# Answer\n\n**(B)**", "B"),
        ("# Answer\n\nB. Selling food", "B"),
        ("# Answer\n\nSelling food", "B"),
        ("# Answer\n\nThe answer is C", "C"),
        ("# Answer\n\nselling something", None),
        ("So the answer is B.", "B"),
        ("The answer is a dog.", None),
        ("Not (A). Maybe (C)... no, (B).", "B"),
        ("The truck is selling food.", "B"),
        ("b", "B"),
        ("A long story without any option in it at all.", None),
    ],
)
def test_choice_extraction_and_fallbacks(response: str, letter: str | None) -> None:
    options = ("Selling clothing", "Selling food", "Selling books", "Selling electronics")
    assert response_letter(response, options) == letter


def test_numbers_in_text() -> None:
    assert numbers_in("1,000 g and -3.5, then 3/4 or \\frac{1}{8}; x2 is no number") == [1000, -3.5, 0.75, 0.125]
    assert numbers_in("[1, 2, 3]") == [1, 2, 3]
    assert numbers_in("1" * 400 + " so 7") == [7.0]  # a degenerate run of digits is no number (not inf)


def test_an_answered_letter_wins_over_options_that_are_letters() -> None:
    diagram_labels = ("D", "B", "A", "C")  # AI2D options are often the labels of a diagram
    assert response_letter("Look.\n\n# Answer\n\nC", diagram_labels) == "C"
    assert response_letter("Look.\n\n# Answer\n\n(C)", diagram_labels) == "C"
    assert response_letter("Look.\n\n# Answer\n\nA cat", ("A dog", "A cat")) == "B"  # text, not a letter


def test_m3cot_prompts_and_scoring(files: dict[str, Path], cache: Path) -> None:
    items = by_id(load("m3cot", files["m3cot"], cache))
    assert set(items) == {"physical-commonsense-1342", "physics-1074", "algebra-12", "geometry-40"}
    physics = items["physics-1074"]
    assert physics.prompt.question.startswith(
        "[Context]\nSelect the best answer.\n\n[Question]\nWhich property do these three objects have in common?\n"
        "[Choices]\n(A) fragile\n(B) sticky\n(C) fuzzy\n\n"
    )
    assert physics.subtask == "science" and items["algebra-12"].subtask == "mathematics"
    assert BENCHMARKS["m3cot"].score(physics, "# Answer\n\nC") == ("C", True)
    assert BENCHMARKS["m3cot"].score(physics, "# Answer\n\nfragile") == ("A", False)


def test_mmstar_parquet_and_tsv_agree_and_r_subset(files: dict[str, Path], cache: Path) -> None:
    hub = load("mmstar", files["mmstar"], cache)
    tsv = load("mmstar", files["mmstar_tsv"], cache)
    assert [(i.prompt.question, i.prompt.answer, i.options, i.subtask) for i in hub] == [
        (i.prompt.question, i.prompt.answer, i.options, i.subtask) for i in tsv
    ]
    assert hub[5].options[0] == "copper, a metal"  # an option holding a comma stays whole
    assert [i.reasoning for i in hub] == [False, False, True, True, True, True]
    assert {i.subtask for i in hub if not i.reasoning} == {"coarse perception", "fine-grained perception"}


def test_mmstar_inline_options() -> None:
    stem, options = split_inline_options("Which is right?\nOptions: A: 3:4 ratio, B: Yes, C: no: never, D: 10")
    assert stem == "Which is right?" and options == ("3:4 ratio", "Yes", "no: never", "10")
    assert split_inline_options("No options here") == ("No options here", ())


def test_mmbench_tsv_and_lmms_lab_parquet(files: dict[str, Path], cache: Path) -> None:
    tsv = by_id(load("mmbench", files["mmbench"], cache))
    hub = by_id(load("mmbench", files["mmbench_parquet"], cache))
    assert list(tsv) == list(hub) == ["0", "1", "2", "3", "4", "5"]  # the parquet's cn config is not read
    assert all(tsv[k].prompt.question == hub[k].prompt.question for k in tsv)
    three = tsv["3"]
    assert three.options == ("hard", "soft", "stretchy") and three.prompt.question.startswith(
        "Hint: Select the best answer.\nQuestion: Which property do these objects have in common?\nOptions:\n(A) hard"
    )
    assert tsv["0"].prompt.question.startswith("Question: Which scene")  # no hint line when the hint is empty
    assert tsv["4"].prompt.images == tsv["3"].prompt.images  # image given by another row's index
    assert {k: (i.subtask, i.reasoning) for k, i in tsv.items()} == {
        "0": ("coarse_perception", False),
        "1": ("finegrained_perception (instance-level)", False),
        "2": ("finegrained_perception (cross-instance)", False),
        "3": ("attribute_reasoning", True),
        "4": ("relation_reasoning", True),
        "5": ("logic_reasoning", True),
    }


def test_ai2d_answers_are_option_indices(files: dict[str, Path], cache: Path) -> None:
    items = load("ai2d", files["ai2d"], cache)
    assert [(i.prompt.id, i.prompt.answer) for i in items] == [("0", "A"), ("1", "C"), ("2", "B")]
    assert items[0].prompt.question.startswith("Which stage comes after the egg?\n(A) larva\n(B) adult")
    assert items[0].subtask == ""


def test_bad_row_stops_the_load_when_configured(files: dict[str, Path], cache: Path) -> None:
    with pytest.raises(BadRowError, match="row 10: missing image"):
        load("mathvista", files["mathvista"], cache, on_bad_row=OnBadRow.ERROR)
    with pytest.raises(BadRowError, match="row social-science-7: answer not among the options"):
        load("m3cot", files["m3cot"], cache, on_bad_row=OnBadRow.ERROR)


def test_limit_and_missing_paths(files: dict[str, Path], cache: Path, tmp_path: Path) -> None:
    loaded = load_benchmarks({"mmbench": str(files["mmbench"]), "ai2d": str(files["ai2d"])}, cache, OnBadRow.SKIP, 2)
    assert [len(b.items) for b in loaded.values()] == [2, 2]
    with pytest.raises(FileNotFoundError, match="benchmark file or folder not found"):
        load_benchmarks({"ai2d": str(tmp_path / "nowhere")}, cache, OnBadRow.SKIP)
    with pytest.raises(ValueError, match="unknown benchmark 'mmmu'"):
        load_benchmarks({"mmmu": str(files["ai2d"])}, cache, OnBadRow.SKIP)
    (tmp_path / "data").mkdir()  # a snapshot holding only a train split
    test_file = next((files["ai2d"] / "data").glob("test-*.parquet"))
    (tmp_path / "data" / "train-00000-of-00001.parquet").write_bytes(test_file.read_bytes())
    with pytest.raises(ValueError, match="no 'test' split among the parquet files"):
        load_benchmarks({"ai2d": str(tmp_path)}, cache, OnBadRow.SKIP)


def _answer(item: BenchItem, right: bool) -> str:
    wrong = "B" if item.prompt.answer == "A" else "A"
    return f"Look.\n\n# Answer\n\n{item.prompt.answer if right else wrong}"


def test_summary_subtasks_and_r_subset(files: dict[str, Path], cache: Path) -> None:
    items = load("mmstar", files["mmstar"], cache)  # two perception items, then four reasoning ones
    results = score_items("mmstar", items, [_answer(item, i in (0, 1, 2)) for i, item in enumerate(items)])
    summary = summarize("mmstar", results)
    assert (summary["items"], summary["correct"], summary["accuracy"]) == (6, 3, 0.5)
    assert summary["reasoning"] == {"items": 4, "correct": 1, "accuracy": 0.25} and summary["headline"] == 0.25
    assert summary["subtasks"]["coarse perception"] == {"items": 1, "correct": 1, "accuracy": 1.0}
    assert summary["subtasks"]["math"] == {"items": 1, "correct": 0, "accuracy": 0.0}
    ai2d = summarize("ai2d", score_items("ai2d", load("ai2d", files["ai2d"], cache), ["# Answer\n\nA"] * 3))
    assert "reasoning" not in ai2d and ai2d["subtasks"] == {} and ai2d["headline"] == pytest.approx(1 / 3)


def _summary(name: str, headline: float, subtasks: dict[str, float] | None = None) -> dict:
    tasks = {k: {"items": 10, "correct": round(10 * v), "accuracy": v} for k, v in (subtasks or {}).items()}
    return {"benchmark": name, "accuracy": headline, "headline": headline, "subtasks": tasks}


def test_results_tables() -> None:
    tasks = {"FQA": 0.5, "GPS": 0.25, "MWP": 0.125, "TQA": 1.0, "VQA": 0.0}
    rows = [
        TableRow("tiny", "pre-evolved", {"mathvista": _summary("mathvista", 0.5, tasks), "mmstar": _summary("x", 0.2)}),
        TableRow("tiny", "final", {"mathvista": _summary("mathvista", 0.6, tasks), "ai2d": _summary("ai2d", 0.7)}),
    ]
    assert benchmark_table(rows) == (
        "| model | stage | MathVista | MMStar-R | AI2D | avg |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        "| tiny | pre-evolved | 50.0 | 20.0 | - | 35.0 |\n"
        "| tiny | final | 60.0 | - | 70.0 | 65.0 |\n"
        "\n"
        "MathVista testmini by task\n"
        "\n"
        "| model | stage | ALL | FQA | GPS | MWP | TQA | VQA |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
        "| tiny | pre-evolved | 50.0 | 50.0 | 25.0 | 12.5 | 100.0 | 0.0 |\n"
        "| tiny | final | 60.0 | 50.0 | 25.0 | 12.5 | 100.0 | 0.0 |\n"
    )
    assert "MathVista testmini by task" not in benchmark_table([TableRow("m", "s", {"ai2d": _summary("ai2d", 1)})])


class GoldAnswerer:
    """A generator that answers right exactly the prompts whose id is listed (the `Generator` protocol)."""

    def __init__(self, right: set[str]) -> None:
        self.right, self.calls = right, []

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, prefixes: Sequence[str] | None = None
    ) -> list[PromptRollouts]:
        self.calls.append(params)
        texts = [f"# Answer\n\n{p.answer}" if p.id in self.right else "# Answer\n\nnothing" for p in prompts]
        return [PromptRollouts(p, [Sample(p.id, t, 3, True, 0)]) for p, t in zip(prompts, texts, strict=True)]


def test_evaluate_benchmarks_writes_summaries_predictions_and_table(
    files: dict[str, Path], cache: Path, tmp_path: Path
) -> None:
    loaded = load_benchmarks({"mmbench": str(files["mmbench"]), "ai2d": str(files["ai2d"])}, cache, OnBadRow.SKIP)
    generator = GoldAnswerer({"3", "4", "0"})  # MMBench 0 (perception), 3 and 4 (reasoning); AI2D 0
    params = SamplingParams(n=4, temperature=0.7, max_new_tokens=16)
    payload = evaluate_benchmarks(generator, loaded, params, tmp_path, "/ckpt/tiny", "final")
    assert generator.calls == [params.with_(n=1, temperature=0.0)]  # one greedy pass over every item
    written = json.loads((tmp_path / "benchmarks.json").read_text())
    assert written == payload and written["stage"] == "final" and written["max_new_tokens"] == 16
    mmbench = written["benchmarks"]["mmbench"]
    assert (mmbench["correct"], mmbench["items"], mmbench["reasoning"]["correct"], mmbench["headline"]) == (
        3,
        6,
        2,
        pytest.approx(2 / 3),
    )
    assert mmbench["load"]["skipped"] == EXPECTED["mmbench"][1]
    records = [
        json.loads(line) for line in (tmp_path / "benchmark_predictions" / "ai2d.jsonl").read_text().splitlines()
    ]
    assert [(r["id"], r["prediction"], r["gold"], r["correct"]) for r in records] == [
        ("0", "A", "A", True),
        ("1", None, "C", False),
        ("2", None, "B", False),
    ]
    table = (tmp_path / "benchmark_table.md").read_text()
    assert table.splitlines()[2] == "| tiny | final | 66.7 | 33.3 | 50.0 |"

    # `mstar table` puts several evaluations side by side: an eval output folder and a run directory's stages.
    run = tmp_path / "run"
    evaluate_benchmarks(GoldAnswerer(set()), loaded, params, run / "benchmarks" / "base", "/ckpt/tiny", "base")
    assert main(["table", str(run), str(tmp_path), "--out", str(tmp_path / "both.md")]) == 0
    lines = (tmp_path / "both.md").read_text().splitlines()
    assert lines[2:4] == ["| tiny | base | 0.0 | 0.0 | 0.0 |", "| tiny | final | 66.7 | 33.3 | 50.0 |"]
    assert main(["table", str(tmp_path / "nothing")]) == 2  # a clear error, not a traceback


def test_config_and_cli_name_benchmarks() -> None:
    base = ["model.path=/m", "data.labeled=l", "data.validation=v", "loop.eval_test=false"]
    cfg = load_config(None, [*base, "eval.benchmarks.mathvista=/data/MathVista", "eval.limit=5"])
    assert cfg.eval.benchmarks == {"mathvista": "/data/MathVista"} and cfg.eval.limit == 5
    assert cfg.eval.max_new_tokens is None and cfg.eval.image_cache is None
    with pytest.raises(ConfigError, match="eval.benchmarks.mmmu: unknown benchmark; choose from mathvista, m3cot"):
        load_config(None, [*base, "eval.benchmarks.mmmu=/data/MMMU"])
    args = build_parser().parse_args(
        ["eval", "--config", "c.yaml", "--benchmarks", "mathvista=/d/My Data: v1", "ai2d=/d/ai2d", "eval.limit=3"]
    )
    overrides = _benchmark_overrides(args)
    assert overrides == ["eval.limit=3", 'eval.benchmarks.mathvista="/d/My Data: v1"', 'eval.benchmarks.ai2d="/d/ai2d"']
    cfg = load_config(None, [*base, *overrides])
    assert cfg.eval.benchmarks == {"mathvista": "/d/My Data: v1", "ai2d": "/d/ai2d"} and cfg.eval.limit == 3
    with pytest.raises(ValueError, match="give NAME=PATH"):
        _benchmark_overrides(build_parser().parse_args(["eval", "--config", "c", "--benchmarks", "mathvista"]))
