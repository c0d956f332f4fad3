"""CSV <-> JSON and XLSX -> CSV: correct output, streaming, and a ConversionError (no output) for bad input."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from PIL import Image

from converters.errors import ConversionError
from converters.formats import tabular
from converters.formats.tabular import csv_to_json, json_to_csv, xlsx_to_csv

Converter = Callable[..., dict[str, Any]]


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    return buffer.getvalue()


def make_xlsx(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    return path


def assert_fails(convert: Converter, source: Path, target: Path, match: str, **options: Any) -> None:
    """The conversion raises ConversionError matching ``match`` and leaves no file behind."""
    before = set(target.parent.iterdir())
    with pytest.raises(ConversionError, match=match):
        convert(source, target, **options)
    assert set(target.parent.iterdir()) == before, "a failed conversion left a file behind"


def assert_streams(convert: Converter, source: Path, target: Path, records: int) -> None:
    """Peak traced memory during the conversion stays far below the size of the file."""
    size = source.stat().st_size
    assert size > 4_000_000
    tracemalloc.start()
    try:
        assert convert(source, target)["records"] == records
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 4, f"peak {peak} bytes for a {size}-byte file: not streaming"


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


# --- csv_to_json ------------------------------------------------------------------------------------


def test_csv_to_json__writes_an_array_of_objects(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", '\ufeffname,note\r\nAnn,"a, ""quoted""\nmultiline"\r\n\r\nBéa,\r\n')
    summary = csv_to_json(source, tmp_path / "out.json")
    assert summary == {"target": str(tmp_path / "out.json"), "records": 2}
    assert json.loads((tmp_path / "out.json").read_text()) == [
        {"name": "Ann", "note": 'a, "quoted"\nmultiline'},
        {"name": "Béa", "note": ""},
    ]


@pytest.mark.parametrize(("target_name", "options"), [("out.jsonl", {}), ("out.json", {"lines": True})])
def test_csv_to_json__writes_json_lines(tmp_path: Path, target_name: str, options: dict[str, Any]) -> None:
    source = write(tmp_path / "in.csv", "a;b\n1;2\n3;4\n")
    csv_to_json(source, tmp_path / target_name, delimiter=";", **options)
    lines = (tmp_path / target_name).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


def test_csv_to_json__header_only_gives_an_empty_array(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", "a,b\n")
    assert csv_to_json(source, tmp_path / "out.json")["records"] == 0
    assert json.loads((tmp_path / "out.json").read_text()) == []


def test_csv_to_json__accepts_fields_bigger_than_the_csv_default(tmp_path: Path) -> None:
    big = "x" * (1024 * 1024)  # 8x csv's default field_size_limit
    source = write(tmp_path / "in.csv", f"a\n{big}\n")
    csv_to_json(source, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == [{"a": big}]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"^in\.csv: empty CSV \(no header row\)$"),
        (b"\n\r\n\n", r"empty CSV \(no header row\)"),
        (b'a,b\n1,"never closed\n', r"^in\.csv line 2: unexpected end of data"),
        (b"a,b,c\n1,2,3\n4,5", r"^in\.csv line 3: 2 field\(s\), but the header has 3$"),
        (b"a,b\n1,2,3\n", r"^in\.csv line 2: 3 field\(s\), but the header has 2$"),
        (b"a,b,a\n1,2,3\n", r"line 1: duplicate column name\(s\) 'a'"),
        (b'a\n"x"y\n', r"line 2: .*expected"),
        (b"a\nok\n\xff\xfe bad\n", r"^in\.csv line 3: not UTF-8 text"),
        (png_bytes(), r"^in\.csv line 1: not UTF-8 text"),
    ],
    ids=["empty", "blank-lines", "truncated-quote", "truncated-row", "extra-field", "duplicate-header",
         "bad-quote", "invalid-utf8", "png"],
)  # fmt: skip
def test_csv_to_json__rejects_bad_input(tmp_path: Path, content: bytes, match: str) -> None:
    assert_fails(csv_to_json, write(tmp_path / "in.csv", content), tmp_path / "out.json", match)


def test_csv_to_json__rejects_a_huge_single_line(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", b"a\n" + b"x" * (tabular.MAX_LINE_BYTES + 10) + b"\n")
    assert_fails(csv_to_json, source, tmp_path / "out.json", r"^in\.csv line 2: longer than 16 MiB$")


def test_csv_to_json__rejects_a_huge_field_spread_over_lines(tmp_path: Path) -> None:
    chunk = b"y" * 1023 + b"\n"
    source = write(tmp_path / "in.csv", b'a\n"' + chunk * (tabular.MAX_LINE_BYTES // len(chunk) + 1) + b'"\n')
    assert_fails(csv_to_json, source, tmp_path / "out.json", r"field larger than field limit")


def test_csv_to_json__streams_rows(tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    with open(source, "w", encoding="utf-8") as fh:
        fh.write("id,name,comment\n")
        fh.writelines(f"{i},name {i},{'some comment text ' * 10}\n" for i in range(25_000))
    assert_streams(csv_to_json, source, tmp_path / "big.json", records=25_000)


# --- json_to_csv ------------------------------------------------------------------------------------


def test_json_to_csv__writes_header_from_first_object(tmp_path: Path) -> None:
    records = [
        {"name": "Ann", "age": 3, "tags": ["x"], "ok": True},
        {"age": 4.5, "name": None, "ok": False},
        {"name": "Zoë", "tags": {"k": "v"}},
    ]
    source = write(tmp_path / "in.json", json.dumps(records))
    summary = json_to_csv(source, tmp_path / "out.csv")
    assert summary == {"target": str(tmp_path / "out.csv"), "records": 3}
    assert read_csv(tmp_path / "out.csv") == [
        ["name", "age", "tags", "ok"],
        ["Ann", "3", '["x"]', "true"],
        ["", "4.5", "", "false"],
        ["Zoë", "", '{"k": "v"}', ""],
    ]


@pytest.mark.parametrize(
    ("source_name", "options"), [("in.jsonl", {}), ("in.ndjson", {}), ("in.json", {"lines": True})]
)
def test_json_to_csv__reads_json_lines(tmp_path: Path, source_name: str, options: dict[str, Any]) -> None:
    source = write(tmp_path / source_name, '{"a": 1, "b": "x"}\n\n{"b": "y\\nz"}\n')
    assert json_to_csv(source, tmp_path / "out.csv", **options)["records"] == 2
    assert read_csv(tmp_path / "out.csv") == [["a", "b"], ["1", "x"], ["", "y\nz"]]


def test_json_to_csv__round_trips_csv_to_json(tmp_path: Path) -> None:
    original = 'id,text\n1,"comma, quote "" and\nnewline"\n2,ünïcode\n'
    csv_to_json(write(tmp_path / "a.csv", original), tmp_path / "a.jsonl")
    json_to_csv(tmp_path / "a.jsonl", tmp_path / "b.csv")
    assert read_csv(tmp_path / "b.csv") == [["id", "text"], ["1", 'comma, quote " and\nnewline'], ["2", "ünïcode"]]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("in.json", b"", r"^in\.json: empty JSON file$"),
        ("in.json", b"[]", r"no JSON objects"),
        ("in.json", b'{"a": 1}', r"expected a JSON array of objects, got an object"),
        ("in.json", b'[{"a": 1}, 2]', r"^in\.json item 1: expected a JSON object, got a number$"),
        ("in.json", b'[{"a": 1},\n {"a": 2', r"^in\.json line 2, column 9: invalid JSON"),
        ("in.json", b'[{"a": 1}, {"a": 2, "b": 3}]', r"^in\.json item 1: key\(s\) 'b' not in the header"),
        ("in.json", b'[{"a": "\xff"}]', r"^in\.json line 1: not UTF-8 text"),
        ("in.json", b"[" * 100_000 + b"]" * 100_000, r"nested too deeply"),
        ("in.json", b'[{"a": ' + b"9" * 5000 + b"}]", r"invalid JSON"),
        ("in.json", b'[{"a": "\\ud800"}]', r"can't be encoded as UTF-8"),
        ("in.json", b"<root><a>1</a></root>", r"line 1, column 1: invalid JSON: Expecting value"),
        ("in.jsonl", b"", r"no JSON objects"),
        ("in.jsonl", b'{"a": 1}\n{"a": 2}\n{"a": 3, "c": 4}\n', r"^in\.jsonl line 3: key\(s\) 'c' not in the header"),
        ("in.jsonl", b'{"a": 1}\n{"a": 2', r"^in\.jsonl line 2, column 8: invalid JSON: Expecting"),
        ("in.jsonl", b'{"a": 1}\n[1, 2]\n', r"^in\.jsonl line 2: expected a JSON object, got an array$"),
        ("in.jsonl", b'{"a": 1}\n{"a": "\xc3"}\n', r"^in\.jsonl line 2: not UTF-8 text"),
        ("in.jsonl", b'{"a": 1}\n' + b"[" * 100_000 + b"\n", r"^in\.jsonl line 2: JSON nested too deeply$"),
        ("in.jsonl", b"{}\n", r"line 1: the first object has no keys"),
        ("in.jsonl", png_bytes(), r"not UTF-8 text"),
    ],
)
def test_json_to_csv__rejects_bad_input(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    assert_fails(json_to_csv, write(tmp_path / name, content), tmp_path / "out.csv", match)


def test_json_to_csv__refuses_a_big_array_and_suggests_json_lines(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(tabular, "MAX_JSON_BYTES", 1000)
    source = write(tmp_path / "in.json", json.dumps([{"a": i} for i in range(200)]))
    assert_fails(json_to_csv, source, tmp_path / "out.csv", r"^in\.json is over 0 MiB: convert it as JSON Lines")


def test_json_to_csv__rejects_a_huge_json_line(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(tabular, "MAX_LINE_BYTES", 100)
    source = write(tmp_path / "in.jsonl", '{"a": 1}\n{"a": "' + "x" * 200 + '"}\n')
    assert_fails(json_to_csv, source, tmp_path / "out.csv", r"^in\.jsonl line 2: longer than")


def test_json_to_csv__streams_json_lines(tmp_path: Path) -> None:
    source = tmp_path / "big.jsonl"
    with open(source, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"id": i, "text": "some text " * 25}) + "\n" for i in range(20_000))
    assert_streams(json_to_csv, source, tmp_path / "big.csv", records=20_000)


# --- xlsx_to_csv ------------------------------------------------------------------------------------


def test_xlsx_to_csv__converts_the_active_sheet(tmp_path: Path) -> None:
    rows = [["name", "n", "ok", "when", "blank"], ["Ann", 1.5, True, dt.datetime(2024, 1, 2, 3, 4), None]]
    source = make_xlsx(tmp_path / "in.xlsx", {"Data": rows, "Other": [["z"]]})
    summary = xlsx_to_csv(source, tmp_path / "out.csv")
    assert summary == {"target": str(tmp_path / "out.csv"), "records": 2}
    assert read_csv(tmp_path / "out.csv") == [rows[0], ["Ann", "1.5", "true", "2024-01-02T03:04:00", ""]]


def test_xlsx_to_csv__converts_a_named_sheet_whatever_the_file_suffix(tmp_path: Path) -> None:
    make_xlsx(tmp_path / "in.xlsx", {"Data": [["a"]], "Other": [["z", 2], ["y", 3]]})
    source = (tmp_path / "in.xlsx").rename(tmp_path / "upload.bin")
    assert xlsx_to_csv(source, tmp_path / "out.tsv", sheet="Other", delimiter="\t")["records"] == 2
    assert (tmp_path / "out.tsv").read_bytes() == b"z\t2\r\ny\t3\r\n"


def test_xlsx_to_csv__unknown_sheet_lists_the_sheets(tmp_path: Path) -> None:
    source = make_xlsx(tmp_path / "in.xlsx", {"Data": [["a"]], "Other": [["z"]]})
    match = r"^in\.xlsx: no sheet named 'Nope'; the sheets are 'Data', 'Other'$"
    assert_fails(xlsx_to_csv, source, tmp_path / "out.csv", match, sheet="Nope")


def test_xlsx_to_csv__rejects_an_empty_sheet(tmp_path: Path) -> None:
    source = make_xlsx(tmp_path / "in.xlsx", {"Empty": [], "Data": [["a"]]})
    assert_fails(xlsx_to_csv, source, tmp_path / "out.csv", r"^in\.xlsx: sheet 'Empty' has no rows$")


def zip_without_workbook(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    return path


def truncated_xlsx(path: Path) -> Path:
    data = make_xlsx(path, {"A": [[n, f"row {n}"] for n in range(500)]}).read_bytes()
    return write(path, data[: len(data) // 2])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: write(p, b""), r"not a readable XLSX workbook"),
        (lambda p: write(p, "a,b\n1,2\n"), r"not a readable XLSX workbook \(BadZipFile"),
        (lambda p: write(p, png_bytes()), r"not a readable XLSX workbook"),
        (zip_without_workbook, r"not a readable XLSX workbook"),
        (truncated_xlsx, r"not a readable XLSX workbook"),
    ],
    ids=["empty", "csv-text", "png", "other-zip", "truncated"],
)
def test_xlsx_to_csv__rejects_non_workbooks(tmp_path: Path, make: Callable[[Path], Path], match: str) -> None:
    assert_fails(xlsx_to_csv, make(tmp_path / "in.xlsx"), tmp_path / "out.csv", match)


# --- shared: options, unusable sources ---------------------------------------------------------------

CONVERTERS = [csv_to_json, json_to_csv, xlsx_to_csv]


@pytest.mark.parametrize(
    ("convert", "options", "match"),
    [
        (csv_to_json, {"colour": "red"}, r"unknown option\(s\) colour; allowed: delimiter, lines"),
        (csv_to_json, {"delimiter": "ab"}, r"option delimiter must be one character"),
        (csv_to_json, {"delimiter": '"'}, r"option delimiter must be one character"),
        (csv_to_json, {"lines": "yes"}, r"option lines must be true or false"),
        (json_to_csv, {"sheet": "x"}, r"unknown option\(s\) sheet"),
        (json_to_csv, {"delimiter": 1}, r"option delimiter"),
        (xlsx_to_csv, {"sheet": 3}, r"option sheet must be a sheet name"),
        (xlsx_to_csv, {"lines": True}, r"unknown option\(s\) lines"),
    ],
)
def test_converters__reject_bad_options(
    tmp_path: Path, convert: Converter, options: dict[str, Any], match: str
) -> None:
    assert_fails(convert, write(tmp_path / "in.csv", "a\n1\n"), tmp_path / "out", match, **options)
