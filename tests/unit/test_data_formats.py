"""Every dataset format loads into the same prompts as its LLaVA JSON equivalent; bad rows are counted or stop."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mstar_ray.config import DataColumnsConfig, OnBadRow
from mstar_ray.config.io import load_config
from mstar_ray.core.records import Prompt
from mstar_ray.data.formats import BadRowError, load_prompts
from mstar_ray.loop.datasets import load_datasets

COLOURS = {"red": (255, 0, 0), "green": (0, 200, 0), "blue": (0, 0, 255), "grey": (90, 90, 90)}
# id, question, answer, image names, gold chain of thought ("" when the row has only the answer)
ITEMS = [
    ("p0", "How many red cells?", "3", ["red.png"], ""),
    ("p1", "Which colour?\nChoices:\n(A) green\n(B) blue", "A", ["green.png"], "It is green.\n\n# Answer\n\nA"),
    ("p2", "Are the two images the same colour?", "no", ["blue.png", "grey.png"], ""),
    ("p3", "How many blue cells?", "12", ["blue.png"], "Count rows.\n\nFour per row.\n\n# Answer\n\n12"),
]
PIXELS = {name: Image.new("RGB", (8, 8), rgb) for name, rgb in ((f"{c}.png", v) for c, v in COLOURS.items())}


def _png(name: str) -> bytes:
    buf = io.BytesIO()
    PIXELS[name].save(buf, format="PNG")
    return buf.getvalue()


def _flat_rows(folder: Path) -> list[dict]:
    """Flat rows; "image" for one image, "images" for several, "reference" when there is a chain of thought."""
    rows = []
    for pid, question, answer, names, reference in ITEMS:
        row = {"id": pid, "question": question, "answer": answer}
        row |= {"image": names[0]} if len(names) == 1 else {"images": names}
        rows.append(row | ({"reference": reference} if reference else {}))
    return rows


def _llava_rows() -> list[dict]:
    return [
        {
            "id": pid,
            "image": names[0] if len(names) == 1 else names,
            "conversations": [
                {"from": "human", "value": "<image>\n" * len(names) + question},
                {"from": "gpt", "value": reference or answer},
            ],
        }
        for pid, question, answer, names, reference in ITEMS
    ]


def _image_dataset(folder: Path) -> datasets.Dataset:
    """`datasets.Image` features (a list of images per row) built from the PNG files."""
    features = datasets.Features(
        {
            "pid": datasets.Value("string"),
            "problem": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "solution": datasets.Value("string"),
            "images": datasets.List(datasets.Image()),
        }
    )
    columns = {"pid": [], "problem": [], "answer": [], "solution": [], "images": []}
    for pid, question, answer, names, reference in ITEMS:
        values = (pid, question, answer, reference, [str(folder / n) for n in names])
        for key, value in zip(columns, values, strict=True):
            columns[key].append(value)
    return datasets.Dataset.from_dict(columns, features=features)


def _write_embedded_parquet(path: Path, conversations: bool) -> None:
    """Parquet with image bytes embedded as `datasets.Image` structs, written with pyarrow directly."""
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    rows = _llava_rows() if conversations else _flat_rows(path.parent)
    for row, (_, _, _, names, _) in zip(rows, ITEMS, strict=True):
        row.pop("image", None)
        row.pop("images", None)
        row["decoded_image"] = [{"bytes": _png(n), "path": n} for n in names]
    types = {
        "decoded_image": pa.list_(image_type),
        "conversations": pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())])),
    }
    pq.write_table(pa.Table.from_pylist(rows, schema=_schema(rows, types)), path)


def _schema(rows: list[dict], types: dict[str, pa.DataType]) -> pa.Schema:
    """Every key of the rows, strings unless `types` says otherwise (missing keys become nulls)."""
    return pa.schema([(key, types.get(key, pa.string())) for key in dict.fromkeys(k for r in rows for k in r)])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, img in PIXELS.items():
        img.save(tmp_path / name)
    return tmp_path


def _content(prompts: list[Prompt]) -> list[tuple]:
    """What a prompt means, with images compared by their pixels rather than their paths."""
    return [
        (p.id, p.question, p.answer, p.reference, tuple(Image.open(i).convert("RGB").tobytes() for i in p.images))
        for p in prompts
    ]


def _write(folder: Path, fmt: str) -> Path:
    if fmt == "llava_jsonl":
        path = folder / "d.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in _llava_rows()))
    elif fmt == "flat_json":
        path = folder / "flat.json"
        path.write_text(json.dumps(_flat_rows(folder)))
    elif fmt == "flat_jsonl":
        path = folder / "flat.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in _flat_rows(folder)))
    elif fmt == "parquet_image_paths":  # to_parquet keeps Image features as paths
        path = folder / "paths.parquet"
        _image_dataset(folder).to_parquet(str(path))
    elif fmt == "parquet_string_paths":
        path = folder / "strings.parquet"
        rows = _flat_rows(folder)
        pq.write_table(pa.Table.from_pylist(rows, schema=_schema(rows, {"images": pa.list_(pa.string())})), path)
    elif fmt in ("parquet_embedded", "parquet_llava_embedded"):
        path = folder / f"{fmt}.parquet"
        _write_embedded_parquet(path, conversations=fmt == "parquet_llava_embedded")
    elif fmt == "save_to_disk":  # save_to_disk embeds the image bytes
        path = folder / "saved"
        _image_dataset(folder).save_to_disk(str(path))
    return path


@pytest.mark.parametrize(
    "fmt",
    [
        "llava_jsonl",
        "flat_json",
        "flat_jsonl",
        "parquet_image_paths",
        "parquet_string_paths",
        "parquet_embedded",
        "parquet_llava_embedded",
        "save_to_disk",
    ],
)
def test_every_format_loads_what_llava_json_loads(folder: Path, fmt: str) -> None:
    (folder / "llava.json").write_text(json.dumps(_llava_rows()))
    expected, _ = load_prompts(folder / "llava.json")
    prompts, report = load_prompts(_write(folder, fmt))
    assert report.loaded == len(ITEMS) and not report.skipped
    assert _content(prompts) == _content(expected)
    assert all(Path(i).is_absolute() and Path(i).is_file() for p in prompts for i in p.images)
    assert report.to_dict()["format"] in ("json", "jsonl", "parquet", "save_to_disk")


def test_embedded_images_are_written_once_to_the_cache(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = _write(folder, "save_to_disk")
    prompts, report = load_prompts(path)
    cache = path / ".mstar_image_cache"
    assert report.format == "save_to_disk" and report.image_cache == str(cache.resolve())
    assert {Path(i).parent for p in prompts for i in p.images} == {cache.resolve()}
    assert len(list(cache.iterdir())) == len(PIXELS)  # blue.png is in two rows, stored once
    again, _ = load_prompts(path)
    assert again == prompts and len(list(cache.iterdir())) == len(PIXELS)
    elsewhere = tmp_path_factory.mktemp("cache")
    moved, report = load_prompts(path, image_cache=elsewhere)
    assert report.image_cache == str(elsewhere.resolve()) and Path(moved[0].images[0]).parent == elsewhere.resolve()
    _, paths_report = load_prompts(_write(folder, "parquet_image_paths"))
    assert paths_report.image_cache is None  # images given as paths are read where they are


def test_dataset_dict_split_is_picked_or_must_be_named(folder: Path) -> None:
    ds = _image_dataset(folder)
    path = folder / "dd"
    datasets.DatasetDict({"train": ds.select(range(3)), "test": ds.select([3])}).save_to_disk(str(path))
    train, report = load_prompts(f"{path}::train")
    test, _ = load_prompts(f"{path}::test")
    assert [p.id for p in train] == ["p0", "p1", "p2"] and [p.id for p in test] == ["p3"] and report.split == "train"
    with pytest.raises(ValueError, match=r"holds the splits test, train: pick one as .*::SPLIT"):
        load_prompts(path)
    with pytest.raises(ValueError, match=r"no split 'dev'; its splits: test, train"):
        load_prompts(f"{path}::dev")
    single = folder / "single"
    datasets.DatasetDict({"train": ds}).save_to_disk(str(single))
    assert len(load_prompts(single)[0]) == len(ITEMS)


def test_parquet_shard_folder_groups_hub_style_splits(folder: Path) -> None:
    data = folder / "hub" / "data"
    data.mkdir(parents=True)
    ds = _image_dataset(folder)
    ds.select([0, 1]).to_parquet(str(data / "train-00000-of-00002.parquet"))
    ds.select([2]).to_parquet(str(data / "train-00001-of-00002.parquet"))
    ds.select([3]).to_parquet(str(data / "testmini-00000-of-00001.parquet"))
    train, report = load_prompts(f"{folder / 'hub'}::train")
    assert [p.id for p in train] == ["p0", "p1", "p2"] and report.format == "parquet"
    with pytest.raises(ValueError, match="holds the splits testmini, train"):
        load_prompts(folder / "hub")
    shards = folder / "shards"  # shards without split names form one table
    shards.mkdir()
    ds.select([0, 1]).to_parquet(str(shards / "part-a.parquet"))
    ds.select([2, 3]).to_parquet(str(shards / "part-b.parquet"))
    assert [p.id for p in load_prompts(shards)[0]] == ["p0", "p1", "p2", "p3"]
    # The hub's parquet converter puts each split in its own folder: default/train/0000.parquet.
    converted = folder / "converted"
    for split, rows in (("train", [0, 1, 2]), ("test", [3])):
        (converted / "default" / split).mkdir(parents=True)
        ds.select(rows).to_parquet(str(converted / "default" / split / "0000.parquet"))
    assert [p.id for p in load_prompts(f"{converted}::test")[0]] == ["p3"]
    with pytest.raises(ValueError, match="holds the splits test, train"):
        load_prompts(converted)  # never both splits silently mixed


def test_a_missing_answer_written_as_nan_is_no_answer(folder: Path) -> None:
    rows = [r | {"image": str(folder / r["image"])} for r in _flat_rows(folder) if "image" in r]
    for i, row in enumerate(rows):  # a numeric answer column, where pandas writes NaN for a missing cell
        row["answer"] = float("nan") if i == 0 else float(i)
        row.pop("reference", None)
    path = folder / "nan.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    prompts, report = load_prompts(path)
    assert [p.id for p in prompts] == [r["id"] for r in rows[1:]] and report.skipped == {"no answer": 1}


def test_columns_are_detected_or_named(folder: Path) -> None:
    rows = [
        {"index": i, "prompt": q, "label": a, "image_path": names[0], "query": f"Q{i}"}
        for i, (_, q, a, names, _) in enumerate(ITEMS)
    ]
    (folder / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts, report = load_prompts(folder / "d.jsonl")
    assert report.columns == {
        "question": "query",
        "conversations": None,
        "answer": "label",
        "image": ("image_path",),
        "id": "index",
        "reference": None,
        "truth": None,
    }
    assert [(p.id, p.question, p.answer) for p in prompts][:2] == [("0", "Q0", "3"), ("1", "Q1", "A")]
    mapped, _ = load_prompts(folder / "d.jsonl", columns=DataColumnsConfig(question="prompt"))
    assert [p.question for p in mapped] == [q for _, q, _, _, _ in ITEMS]
    with pytest.raises(ValueError, match=r"data\.columns\.question: .* has no column 'problem'; its columns: index"):
        load_prompts(folder / "d.jsonl", columns=DataColumnsConfig(question="problem"))
    (folder / "noq.json").write_text(json.dumps([{"text": "x", "answer": "1", "image": "red.png"}]))
    with pytest.raises(ValueError, match=r"data\.columns\.question: no question column .* data\.columns\.question="):
        load_prompts(folder / "noq.json")


def test_a_solution_becomes_a_reference_with_an_answer_section(folder: Path) -> None:
    rows = [
        {"id": "a", "question": "Q?", "answer": 3, "image": "red.png", "solution": "Count: 1, 2, 3."},
        {"id": "b", "question": "Q?", "image": "red.png", "solution": "Two and two.\n\n# Answer\n\n4"},
        {"id": "c", "question": "Q?", "image": "red.png", "solution": "No final section."},
    ]
    (folder / "s.json").write_text(json.dumps(rows))
    prompts, report = load_prompts(folder / "s.json")
    assert [(p.id, p.answer) for p in prompts] == [("a", "3"), ("b", "4")] and report.skipped == {"no answer": 1}
    assert prompts[0].reference == "Count: 1, 2, 3.\n\n# Answer\n\n3"
    unlabeled, _ = load_prompts(folder / "s.json", require_answer=False)
    assert [(p.id, p.answer, p.reference) for p in unlabeled][2] == ("c", "", "")


def test_bad_rows_of_every_kind_are_counted(folder: Path) -> None:
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    good = {"question": "Q?", "answer": "1", "image": "red.png"}
    lines = [json.dumps(good | {"id": "ok"}), "{not json", json.dumps(["a", "list"])]
    bad = [
        {"id": "no-q", "question": " "},
        {"id": "q-list", "question": ["Q?"]},
        {"id": "no-a", "answer": None},
        {"id": "a-dict", "answer": {"value": 1}},
        {"id": "no-img", "image": None},
        {"id": "img-int", "image": 7},
        {"id": "img-missing", "image": "nope.png"},
        {"id": "img-corrupt", "image": "corrupt.png"},
    ]
    lines += [json.dumps(good | row) for row in bad]
    (folder / "bad.jsonl").write_text("\n".join(lines) + "\n")
    prompts, report = load_prompts(folder / "bad.jsonl")
    assert [p.id for p in prompts] == ["ok"]
    assert report.skipped == {
        "malformed JSON line": 1,
        "row is not an object": 1,
        "no question": 1,
        "question is not text": 1,
        "no answer": 1,
        "answer is not text": 1,
        "no image field": 1,
        "image field has wrong type": 1,
        "missing image": 1,
        "unreadable image": 1,
    }
    assert report.examples["malformed JSON line"] == "#1" and report.examples["missing image"] == "img-missing"
    with pytest.raises(BadRowError, match=r"bad\.jsonl: row #1: malformed JSON line"):
        load_prompts(folder / "bad.jsonl", on_bad_row=OnBadRow.ERROR)


def test_undecodable_image_bytes_are_skipped_or_stop(folder: Path) -> None:
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = [{"bytes": _png("red.png"), "path": None}, {"bytes": b"garbage", "path": None}, None]
    table = pa.table(
        {"id": ["ok", "garbled", "none"], "question": ["Q?"] * 3, "answer": ["1"] * 3, "image": images},
        schema=pa.schema(
            [("id", pa.string()), ("question", pa.string()), ("answer", pa.string()), ("image", image_type)]
        ),
    )
    pq.write_table(table, folder / "b.parquet")
    prompts, report = load_prompts(folder / "b.parquet")
    assert [p.id for p in prompts] == ["ok"]
    assert report.skipped == {"undecodable image bytes": 1, "no image field": 1}
    with pytest.raises(BadRowError, match=r"b\.parquet: row garbled: undecodable image bytes"):
        load_prompts(folder / "b.parquet", on_bad_row=OnBadRow.ERROR)


def test_unsupported_paths_and_split_suffixes(folder: Path) -> None:
    (folder / "d.csv").write_text("question,answer\n")
    with pytest.raises(ValueError, match="unsupported dataset format"):
        load_prompts(folder / "d.csv")
    (folder / "d.json").write_text(json.dumps(_llava_rows()))
    with pytest.raises(ValueError, match="a JSON file has no splits"):
        load_prompts(f"{folder / 'd.json'}::train")
    with pytest.raises(FileNotFoundError):
        load_prompts(folder / "nope.parquet")
    (folder / "empty").mkdir()
    with pytest.raises(ValueError, match="no parquet files, and not a folder written by datasets' save_to_disk"):
        load_prompts(folder / "empty")


def test_run_config_reads_any_format_and_reports_it(folder: Path) -> None:
    saved, parquet = _write(folder, "save_to_disk"), _write(folder, "parquet_string_paths")
    keys = [
        "model.path=/m",
        f"data.labeled={saved}",
        f"data.validation={parquet}",
        "data.test=",
        "loop.eval_test=false",
    ]
    data = load_datasets(load_config(None, [*keys, "data.image_cache=" + str(folder / "c")]))
    assert len(data.labeled) == len(data.validation) == len(ITEMS)
    assert data.reports["labeled"]["format"] == "save_to_disk"
    assert data.reports["labeled"]["image_cache"] == str((folder / "c").resolve())
    assert data.reports["validation"]["format"] == "parquet" and data.reports["validation"]["image_cache"] is None
    json.dumps(data.reports)  # what the run writes to data_report.json
    with pytest.raises(ValueError, match=r"data\.labeled: data\.columns\.id: .* has no column 'id'; its columns: pid"):
        load_datasets(load_config(None, [*keys, "data.columns.id=id"]))
    with pytest.raises(ValueError, match=r"data\.columns\.text"):
        load_config(None, [*keys, "data.columns.text=x"])
