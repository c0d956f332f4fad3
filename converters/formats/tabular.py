"""Tabular converters: CSV -> JSON, JSON / JSON Lines -> CSV (both streaming) and XLSX -> CSV."""

from __future__ import annotations

import collections
import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import openpyxl

from converters.atomic import atomic_output
from converters.errors import ConversionError
from converters.formats import archive, estimates
from converters.formats.common import check_options, open_source
from converters.limits import reraise_memory_error

#: Longest line (and CSV field) accepted. Lines are read with this bound, so one can't exhaust memory.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: A plain JSON array is loaded whole, so it is capped; bigger data must come as JSON Lines.
MAX_JSON_BYTES = 64 * 1024 * 1024
#: Suffixes that mean "one JSON object per line".
LINES_SUFFIXES = frozenset({".jsonl", ".ndjson"})

# Once, at import, to a fixed value: the default 128 KiB refuses legitimate big cells.
csv.field_size_limit(MAX_LINE_BYTES)

_JSON = json.JSONEncoder(ensure_ascii=False)


def csv_to_json(source: Path, target: Path, **options: Any) -> dict[str, Any]:
    """Convert a UTF-8 CSV file with a header row to a JSON array of objects, streaming row by row.

    Options:
      ``delimiter`` (str, one character, default ``","``): the field separator.
      ``lines`` (bool, default: target suffix is ``.jsonl``/``.ndjson``): write JSON Lines instead.

    Every value stays a string. A UTF-8 BOM is ignored and blank lines are skipped. An empty file
    (no header row) is an error, as are a duplicate column name and a row whose field count differs
    from the header's (that is also how a truncated last row shows). A header with no rows gives ``[]``.
    ``records`` is the number of data rows.
    """
    check_options(options, {"delimiter", "lines"})
    delimiter = _delimiter(options)
    lines = _lines_option(options, target)
    with open_source(source) as fh, atomic_output(target) as out:
        records = _write_json_records(_csv_objects(fh, source, delimiter), out, lines=lines)
    return {"target": str(target), "records": records}


def json_to_csv(source: Path, target: Path, **options: Any) -> dict[str, Any]:
    """Convert a JSON array of objects, or JSON Lines (one object per line, streamed), to CSV.

    Options:
      ``delimiter`` (str, one character, default ``","``): the field separator.
      ``lines`` (bool, default: source suffix is ``.jsonl``/``.ndjson``): read the source as JSON Lines.

    The header is the keys of the first object, in order. A later object may omit keys (empty cell)
    but a key not in the header is an error naming its line (or array item). Cells: ``null`` -> empty,
    booleans -> ``true``/``false``, nested arrays/objects -> compact JSON text. An empty source, or one
    with no objects, is an error (a CSV needs a header). A plain array is loaded whole and refused
    above 64 MiB, or when its values would need more memory than a job may use (``estimates``);
    JSON Lines has no size limit, only those limits per line (16 MiB). ``records`` = objects.
    """
    check_options(options, {"delimiter", "lines"})
    delimiter = _delimiter(options)
    lines = _lines_option(options, source)
    with open_source(source) as fh:
        records = _jsonl_objects(fh, source) if lines else _json_array_objects(fh, source)
        with atomic_output(target, newline="") as out:
            count = _write_csv_records(records, out, source, delimiter)
    return {"target": str(target), "records": count}


def xlsx_to_csv(source: Path, target: Path, **options: Any) -> dict[str, Any]:
    """Convert one worksheet of an XLSX workbook to CSV, streaming rows (cached formula results).

    Options:
      ``sheet`` (str, default: the workbook's active sheet): the worksheet's name.
      ``delimiter`` (str, one character, default ``","``): the field separator.

    Every row is written, the first one included (no header detection). Cells: empty -> empty,
    booleans -> ``true``/``false``, dates/times -> ISO 8601. A sheet with no rows is an error,
    as is a file that isn't an XLSX workbook (e.g. a legacy ``.xls``), and a zip that would cost more
    to open than its size suggests (``archive``: checked before openpyxl reads it). ``records`` = rows written.
    """
    check_options(options, {"sheet", "delimiter"})
    delimiter = _delimiter(options)
    sheet = options.get("sheet")
    if sheet is not None and not isinstance(sheet, str):
        raise ConversionError(f"option sheet must be a sheet name (string), got {sheet!r}")
    with open_source(source) as fh, atomic_output(target, newline="") as out:
        writer = csv.writer(out, delimiter=delimiter)
        count = 0
        for row in _xlsx_rows(fh, source, sheet):
            writer.writerow(row)
            count += 1
    return {"target": str(target), "records": count}


def _delimiter(options: dict[str, Any]) -> str:
    value = options.get("delimiter", ",")
    if not isinstance(value, str) or len(value) != 1 or value in '"\r\n':
        raise ConversionError(f"option delimiter must be one character, not a quote or newline; got {value!r}")
    return value


def _lines_option(options: dict[str, Any], path: Path) -> bool:
    value = options.get("lines", path.suffix.lower() in LINES_SUFFIXES)
    if not isinstance(value, bool):
        raise ConversionError(f"option lines must be true or false, got {value!r}")
    return value


def _text_lines(fh: IO[bytes], source: Path) -> Iterator[str]:
    """Decoded lines of ``fh``; an over-long line or invalid UTF-8 is a ConversionError naming the line."""
    number = 0
    while line := fh.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise ConversionError(f"{source.name} line {number}: longer than {MAX_LINE_BYTES // 2**20} MiB")
        try:
            text = line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise ConversionError(f"{source.name} line {number}: not UTF-8 text ({exc.reason})") from exc
        yield text


def _csv_objects(fh: IO[bytes], source: Path, delimiter: str) -> Iterator[str]:
    """The JSON text of each data row, as an object keyed by the header."""
    # strict: an unclosed quote at end of file (a truncated file) is an error, not a silent field.
    reader = csv.reader(_text_lines(fh, source), delimiter=delimiter, strict=True)
    keys: list[str] = []
    try:
        for row in reader:
            if not row:  # a blank line
                continue
            if not keys:
                keys = _json_keys(row, source)
            elif len(row) != len(keys):
                where = f"{source.name} line {reader.line_num}"
                raise ConversionError(f"{where}: {len(row)} field(s), but the header has {len(keys)}")
            else:
                # Hand-assembled from pre-encoded keys: several times faster than json.dumps(dict).
                yield "{" + ", ".join([key + _JSON.encode(value) for key, value in zip(keys, row, strict=True)]) + "}"
    except csv.Error as exc:
        raise ConversionError(f"{source.name} line {reader.line_num}: {exc}") from exc
    if not keys:
        raise ConversionError(f"{source.name}: empty CSV (no header row)")


def _json_keys(header: list[str], source: Path) -> list[str]:
    duplicates = sorted(name for name, count in collections.Counter(header).items() if count > 1)
    if duplicates:
        raise ConversionError(f"{source.name} line 1: duplicate column name(s) {', '.join(map(repr, duplicates))}")
    return [_JSON.encode(name) + ": " for name in header]


def _write_json_records(records: Iterable[str], out: IO[str], *, lines: bool) -> int:
    count = 0
    for count, text in enumerate(records, 1):
        out.write(text + "\n" if lines else ("[\n" if count == 1 else ",\n") + text)
    if not lines:
        out.write("\n]\n" if count else "[]\n")
    return count


def _jsonl_objects(fh: IO[bytes], source: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for number, line in enumerate(_text_lines(fh, source), 1):
        if line.strip():
            estimates.check_json(source, line, "csv", where=f"line {number}")
            value = _json_loads(line, source, number)
            if not isinstance(value, dict):
                raise ConversionError(f"{source.name} line {number}: expected a JSON object, got {_json_type(value)}")
            yield f"line {number}", value


def _json_array_objects(fh: IO[bytes], source: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    data = fh.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        limit = MAX_JSON_BYTES // 2**20
        raise ConversionError(f"{source.name} is over {limit} MiB: convert it as JSON Lines (one object per line)")
    if not data.strip():
        raise ConversionError(f"{source.name}: empty JSON file")
    estimates.check_json(source, data, "csv")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConversionError(f"{source.name} line {line}: not UTF-8 text ({exc.reason})") from exc
    del data  # the text is all the parser needs: don't hold both
    document = _json_loads(text, source, None)
    if not isinstance(document, list):
        raise ConversionError(f"{source.name}: expected a JSON array of objects, got {_json_type(document)}")
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            raise ConversionError(f"{source.name} item {index}: expected a JSON object, got {_json_type(item)}")
        yield f"item {index}", item


def _json_loads(text: str, source: Path, line: int | None) -> Any:
    """Parse ``text``: the whole file (``line`` None) or the given line of a JSON Lines file."""
    where = f"{source.name} line {line}" if line else source.name
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        position = f"line {line or exc.lineno}, column {exc.colno}"
        raise ConversionError(f"{source.name} {position}: invalid JSON: {exc.msg}") from exc
    except RecursionError as exc:
        raise ConversionError(f"{where}: JSON nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python will convert
        raise ConversionError(f"{where}: invalid JSON: {exc}") from exc


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _write_csv_records(
    records: Iterable[tuple[str, dict[str, Any]]], out: IO[str], source: Path, delimiter: str
) -> int:
    writer = csv.writer(out, delimiter=delimiter)
    header: list[str] = []
    known: set[str] = set()
    count = 0
    for where, record in records:
        if count == 0:
            header, known = list(record), set(record)
            if not header:
                raise ConversionError(f"{source.name} {where}: the first object has no keys to make a header from")
            writer.writerow(header)
        if not known.issuperset(record):
            names = ", ".join(repr(key) for key in record if key not in known)
            raise ConversionError(f"{source.name} {where}: key(s) {names} not in the header (the first object's keys)")
        try:
            writer.writerow([_cell(record.get(key)) for key in header])
        except UnicodeEncodeError as exc:  # a lone surrogate escaped in the JSON ("\ud800")
            raise ConversionError(f"{source.name} {where}: text that can't be encoded as UTF-8") from exc
        count += 1
    if count == 0:
        raise ConversionError(f"{source.name}: no JSON objects (a CSV needs at least one for its header)")
    return count


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _xlsx_rows(fh: IO[bytes], source: Path, sheet: str | None) -> Iterator[list[str]]:
    # openpyxl raises an open-ended set of types on corrupt input (BadZipFile, InvalidFileException,
    # KeyError, ValueError, XML parse errors...), so anything it raises while reading is the file's fault.
    # A file object, not the path: openpyxl would otherwise refuse any name not ending in .xlsx.
    archive.check_workbook_archive(fh, source)
    try:
        workbook = openpyxl.load_workbook(fh, read_only=True, data_only=True)
    except Exception as exc:
        reraise_memory_error(exc)
        raise ConversionError(f"{source.name} is not a readable XLSX workbook ({_describe(exc)})") from exc
    try:
        worksheet = _pick_sheet(workbook, sheet, source)
        empty = True
        for row in worksheet.iter_rows(values_only=True):
            empty = False
            yield [_cell(value) for value in row]
        if empty:
            raise ConversionError(f"{source.name}: sheet {worksheet.title!r} has no rows")
    except ConversionError:
        raise
    except Exception as exc:
        reraise_memory_error(exc)
        raise ConversionError(f"{source.name}: corrupt XLSX sheet data ({_describe(exc)})") from exc
    finally:
        workbook.close()


def _pick_sheet(workbook: Any, name: str | None, source: Path) -> Any:
    if name is not None and name not in workbook.sheetnames:
        names = ", ".join(map(repr, workbook.sheetnames))
        raise ConversionError(f"{source.name}: no sheet named {name!r}; the sheets are {names}")
    worksheet = workbook.active if name is None else workbook[name]
    if worksheet is None or not hasattr(worksheet, "iter_rows"):
        raise ConversionError(f"{source.name}: sheet {name or '(active)'!r} is not a worksheet (a chart?)")
    return worksheet


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
