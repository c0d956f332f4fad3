"""The XLSX zip checks: counted from headers and a streaming read, before openpyxl reads anything."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from converters.errors import ConversionError
from converters.formats import archive
from converters.formats.tabular import xlsx_to_csv
from tests.converters.bombs import MiB, workbook_with


def write(tmp_path: Path, data: bytes, name: str = "in.xlsx") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def check(path: Path) -> None:
    with open(path, "rb") as fh:
        archive.check_workbook_archive(fh, path)
        assert fh.tell() == 0  # left where openpyxl starts


def real_workbook(rows: int = 20_000) -> bytes:
    workbook, out = openpyxl.Workbook(write_only=True), io.BytesIO()
    sheet = workbook.create_sheet()
    for i in range(rows):
        sheet.append([i, f"name {i % 100}", i * 1.5, None, "same", True])
    workbook.save(out)
    return out.getvalue()


def test_real_workbook__passes_and_converts(tmp_path: Path) -> None:
    source = write(tmp_path, real_workbook())
    check(source)
    assert xlsx_to_csv(source, tmp_path / "out.csv")["records"] == 20_000


def test_member_inflating_more_than_100_to_1__refused_before_openpyxl(tmp_path: Path, monkeypatch: Any) -> None:
    source = write(tmp_path, workbook_with("docProps/core.xml", lambda d: d + b" " * (4 * MiB)))
    monkeypatch.setattr(openpyxl, "load_workbook", lambda *a, **k: pytest.fail("openpyxl saw the file"))
    with pytest.raises(ConversionError, match=r"'docProps/core.xml' inflates [\d,]+ bytes to [\d,]+ \(more than 100"):
        xlsx_to_csv(source, tmp_path / "out.csv")


def test_small_member_is_not_held_to_the_ratio(tmp_path: Path) -> None:
    # Under 1 MiB a member may compress as well as it likes: small repetitive XML does.
    check(write(tmp_path, workbook_with("docProps/core.xml", lambda d: d + b" " * (MiB // 2))))


def test_total_over_the_setting__refused(tmp_path: Path, settings: Any) -> None:
    source = write(tmp_path, real_workbook())
    settings.CONVERTERS_MAX_DECOMPRESSED_BYTES = 1_000_000
    with pytest.raises(ConversionError, match=r"decompress to [\d,]+ bytes; the limit is 1,000,000"):
        check(source)
    settings.CONVERTERS_MAX_DECOMPRESSED_BYTES = None  # no limit: the same file passes
    check(source)


def test_parts_parsed_whole__held_to_the_memory_budget(tmp_path: Path, settings: Any) -> None:
    # 24 MiB of shared strings (different ones: under 100 to 1) would take about 380 MiB in openpyxl.
    strings = b"".join(b"<si><t>%d</t></si>" % i for i in range(1_400_000))
    source = write(tmp_path, workbook_with("docProps/app.xml", lambda d: d, extra={"xl/sharedStrings.xml": strings}))
    settings.CONVERTERS_MAX_MEMORY_MB = 512
    with pytest.raises(ConversionError, match="bytes of workbook parts parsed whole would need about"):
        check(source)
    settings.CONVERTERS_MAX_MEMORY_MB = 1024
    check(source)


def test_worksheets_are_not_counted_as_parsed_whole(tmp_path: Path, settings: Any) -> None:
    # A 20 MB sheet would be 320 MiB at the parsed-whole rate, over this budget; openpyxl streams it.
    rows = b"".join(b'<row r="%d"><c r="A%d"><v>%d</v></c></row>' % (i, i, i) for i in range(2, 480_000))
    sheet = workbook_with("xl/worksheets/sheet1.xml", lambda d: d.replace(b"</sheetData>", rows + b"</sheetData>"))
    settings.CONVERTERS_MAX_MEMORY_MB = 512
    check(write(tmp_path, sheet))


def with_end_record(data: bytes, *, entries: int | None = None, directory: int | None = None) -> bytes:
    at = data.rfind(b"PK\x05\x06")
    fields = list(struct.unpack_from("<4s4H2LH", data, at))
    fields[4] = entries if entries is not None else fields[4]
    fields[5] = directory if directory is not None else fields[5]
    return data[:at] + struct.pack("<4s4H2LH", *fields) + data[at + 22 :]


@pytest.mark.parametrize(("entries", "directory"), [(20_000, None), (0xFFFF, None), (None, 5 * MiB)])
def test_directory_too_big__refused_from_the_end_record(
    tmp_path: Path, monkeypatch: Any, entries: int | None, directory: int | None
) -> None:
    source = write(tmp_path, with_end_record(real_workbook(10), entries=entries, directory=directory))
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("zipfile parsed the directory"))
    with pytest.raises(ConversionError, match=r"members in a [\d,]+-byte directory; a workbook may have at most"):
        check(source)


def with_declared_size(data: bytes, member: str, size: int) -> bytes:
    """``data`` with ``member``'s uncompressed size in the central directory (only) changed to ``size``."""
    with zipfile.ZipFile(io.BytesIO(data)) as original:
        offset = original.getinfo(member).header_offset
    at = data.find(b"PK\x01\x02")  # central directory entries: local header offset at +42, size at +24
    while struct.unpack_from("<L", data, at + 42)[0] != offset:
        at = data.find(b"PK\x01\x02", at + 4)
    return data[: at + 24] + struct.pack("<L", size) + data[at + 28 :]


@pytest.mark.parametrize("change", [-100, +100])
def test_declared_size_that_is_not_the_actual_one__refused_naming_the_member(tmp_path: Path, change: int) -> None:
    plain = workbook_with("docProps/app.xml", lambda d: d)
    with zipfile.ZipFile(io.BytesIO(plain)) as original:
        size = original.getinfo("xl/styles.xml").file_size
    source = write(tmp_path, with_declared_size(plain, "xl/styles.xml", size + change))
    with zipfile.ZipFile(source) as lying:
        assert lying.getinfo("xl/styles.xml").file_size == size + change  # the header lies
    with pytest.raises(ConversionError, match=r"^in.xlsx: zip member 'xl/styles.xml' (declares|can't be read)"):
        check(source)


def test_corrupt_member__refused_naming_it(tmp_path: Path) -> None:
    data = bytearray(real_workbook(2000))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as original:
        info = original.getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 100 : start + 110] = b"\x00" * 10  # damage the compressed stream
    with pytest.raises(ConversionError, match=r"^in.xlsx: zip member 'xl/worksheets/sheet1.xml' can't be read"):
        check(write(tmp_path, bytes(data)))
