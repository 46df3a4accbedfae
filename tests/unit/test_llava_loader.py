"""Loading LLaVA-style data: good rows, bad rows counted with reasons, or a hard stop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mstar_ray.data.llava import BadRowError, OnBadRow, load_prompts


def _row(i: int, image: str | None, human: str = "<image>\nHow many red cells?", gpt: str = "3") -> dict:
    row = {"id": f"r{i}", "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]}
    if image is not None:
        row["image"] = image
    return row


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    Image.new("RGB", (28, 28), (255, 0, 0)).save(tmp_path / "img" / "ok.png")
    (tmp_path / "img" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    return tmp_path


def test_reads_synthetic_splits(tiny_data: dict[str, Path]) -> None:
    seed, report = load_prompts(tiny_data["seed"])
    labeled, _ = load_prompts(tiny_data["labeled"])
    assert report.loaded == len(seed) == 16 and not report.skipped
    assert all(len(p.images) == 1 and Path(p.images[0]).is_file() and "<image>" not in p.question for p in seed)
    assert all("\n\n# Answer\n\n" in p.reference and p.reference.endswith(p.answer) for p in seed)
    assert all(p.reference == "" and p.answer for p in labeled)


def test_bad_rows_are_skipped_and_counted(folder: Path) -> None:
    rows = [
        _row(0, "img/ok.png"),
        _row(1, "img/missing.png"),
        _row(2, "img/corrupt.png"),
        _row(3, None),
        {"id": "r4", "image": "img/ok.png"},
        _row(5, "img/ok.png", gpt="  "),
        "not an object",
        _row(7, "img/ok.png", gpt="Step one.\n\n# Answer\n\n"),
        _row(8, "img/ok.png", human="Which?\nChoices:\n(A) red\n(B) blue", gpt="Red.\n\n# Answer\n\nA"),
    ]
    (folder / "d.json").write_text(json.dumps(rows))
    prompts, report = load_prompts(folder / "d.json")
    assert [p.id for p in prompts] == ["r0", "r8"]
    assert prompts[1].answer == "A" and prompts[1].reference.endswith("# Answer\n\nA")
    assert report.skipped == {
        "missing image": 1,
        "unreadable image": 1,
        "no image field": 1,
        "no conversations": 1,
        "empty question or answer": 1,
        "row is not an object": 1,
        "no final answer": 1,
    }
    assert report.examples["missing image"] == "r1"


def test_bad_row_stops_when_configured(folder: Path) -> None:
    (folder / "d.json").write_text(json.dumps([_row(0, "img/ok.png"), _row(1, "img/missing.png")]))
    with pytest.raises(BadRowError, match="r1: missing image"):
        load_prompts(folder / "d.json", on_bad_row=OnBadRow.ERROR)


def test_jsonl_and_image_root(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("meta")
    (elsewhere / "d.jsonl").write_text("\n".join(json.dumps(_row(i, "img/ok.png")) for i in range(3)) + "\n")
    prompts, report = load_prompts(elsewhere / "d.jsonl", image_root=folder)
    assert report.loaded == 3 and prompts[0].images == (str((folder / "img" / "ok.png").resolve()),)


def test_missing_file_and_wrong_top_level(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_prompts(tmp_path / "nope.json")
    (tmp_path / "obj.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(BadRowError, match="JSON list"):
        load_prompts(tmp_path / "obj.json")


def test_unlabeled_rows_need_no_answer(folder: Path) -> None:
    question_only = {"id": "u0", "image": "img/ok.png", "conversations": [{"from": "human", "value": "<image>\nQ?"}]}
    rows = [question_only, _row(1, "img/ok.png"), {"id": "u2", "image": "img/ok.png", "conversations": []}]
    (folder / "u.json").write_text(json.dumps(rows))
    prompts, report = load_prompts(folder / "u.json", require_answer=False)
    assert [(p.id, p.answer) for p in prompts] == [("u0", ""), ("r1", "3")]
    assert dict(report.skipped) == {"no conversations": 1}
    labeled, report = load_prompts(folder / "u.json")
    assert [p.id for p in labeled] == ["r1"] and dict(report.skipped) == {"no conversations": 2}
