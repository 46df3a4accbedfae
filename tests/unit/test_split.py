"""`mstar split`: one source into disjoint labeled, unlabeled, validation and test sets that load back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from PIL import Image

from mstar_ray.cli import main
from mstar_ray.data.formats import load_prompts

SETS = ("labeled", "unlabeled", "validation", "test")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A 42-row MathV360K-style source: 40 usable rows (some with chains of thought, one with two images), 2 bad."""
    images = tmp_path / "src" / "images"
    images.mkdir(parents=True)
    rows = []
    for i in range(40):
        Image.new("RGB", (8, 8), (i * 6, 255 - i * 6, 0)).save(images / f"{i}.png")
        gpt = f"Step.\n\n# Answer\n\n{i}" if i % 3 == 0 else str(i)
        names = [f"images/{i}.png", f"images/{i - 1}.png"] if i == 7 else f"images/{i}.png"
        turns = [{"from": "human", "value": f"<image>\nQuestion {i}?"}, {"from": "gpt", "value": gpt}]
        rows.append({"id": f"q{i}", "image": names, "conversations": turns})
    rows += [{"id": "bad-image", "image": "images/missing.png", "conversations": turns}, {"id": "bad-turns"}]
    (tmp_path / "src" / "train.json").write_text(json.dumps(rows))
    return tmp_path / "src" / "train.json"


def _split(source: Path | str, out: Path, *flags: str) -> int:
    return main(["split", "--source", str(source), "--out", str(out), "--test", "6", "--validation", "4", *flags])


def test_split_writes_disjoint_sets_that_load_back(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _split(source, Path("out")) == 0
    out = tmp_path / "out"
    printed = capsys.readouterr().out
    assert f"data.labeled={out / 'labeled.json'}" in printed and f"data.test={out / 'test.json'}" in printed
    original = {p.id: p for p in load_prompts(source)[0]}
    loaded = {name: load_prompts(out / f"{name}.json", require_answer=name != "unlabeled")[0] for name in SETS}
    assert {name: len(prompts) for name, prompts in loaded.items()} == {
        "labeled": 20,
        "unlabeled": 10,
        "validation": 4,
        "test": 6,
    }
    ids = [p.id for prompts in loaded.values() for p in prompts]
    assert len(ids) == len(set(ids)) == 40 and set(ids) == set(original)
    assert all(p == original[p.id] for prompts in loaded.values() for p in prompts)  # answers, references, images
    assert all(p.answer for p in loaded["unlabeled"])  # kept for measuring pseudo-label agreement
    report = json.loads((out / "split_report.json").read_text())
    assert report["seed"] == 0 and report["counts"] == {"labeled": 20, "unlabeled": 10, "validation": 4, "test": 6}
    assert report["load"]["skipped"] == {"missing image": 1, "no conversations": 1}

    moved = tmp_path / "elsewhere"
    out.rename(moved)  # absolute image paths: the files work wherever they are
    assert load_prompts(moved / "test.json")[0] == loaded["test"]


def test_split_is_determined_by_the_seed(source: Path, tmp_path: Path) -> None:
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert _split(source, tmp_path / name, "--seed", seed) == 0
    files = {name: [(tmp_path / name / f"{s}.json").read_text() for s in SETS] for name in "abc"}
    assert files["a"] == files["b"] and files["a"] != files["c"]


def test_too_few_rows_names_the_flags(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _split(source, tmp_path / "out", "--test", "30") == 2
    error = capsys.readouterr().err
    assert "40 usable prompts" in error and "--test 30 plus --validation 4" in error
    assert not (tmp_path / "out").exists()
    assert _split(source, tmp_path / "out", "--labeled-share", "1.5") == 2
    assert "--labeled-share must be between 0 and 1" in capsys.readouterr().err
    assert _split(source, tmp_path / "out", "--on-bad-row", "error") == 2
    assert "row bad-image: missing image" in capsys.readouterr().err


def test_split_of_a_dataset_dict_with_named_columns(source: Path, tmp_path: Path) -> None:
    prompts, _ = load_prompts(source)
    columns = {"qid": [p.id for p in prompts], "text": [p.question for p in prompts]}
    columns |= {"gold": [p.answer for p in prompts], "image": [list(p.images) for p in prompts]}
    features = datasets.Features(
        {"qid": datasets.Value("string"), "text": datasets.Value("string"), "gold": datasets.Value("string")}
        | {"image": datasets.List(datasets.Image())}
    )
    saved = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(columns, features=features)}).save_to_disk(str(saved))
    flags = ("--column", "question=text", "--column", "answer=gold", "--column", "id=qid")
    assert _split(f"{saved}::train", tmp_path / "out", *flags) == 0
    test, _ = load_prompts(tmp_path / "out" / "test.json")
    by_id = {p.id: p for p in prompts}
    assert len(test) == 6 and all((p.question, p.answer) == (by_id[p.id].question, by_id[p.id].answer) for p in test)
    assert all(Path(i).parent == (saved / ".mstar_image_cache").resolve() for p in test for i in p.images)
    assert _split(saved, tmp_path / "out2", "--column", "question") == 2
