"""Small files that take a lot of memory to convert: one maker per kind of bomb."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

from openpyxl import Workbook
from PIL import Image

MiB = 1024 * 1024


def repeat(unit: bytes, size: int) -> bytes:
    return unit * (size // len(unit))


def workbook_with(
    member: str, edit: Callable[[bytes], bytes], *, stored: bool = False, extra: dict[str, bytes] | None = None
) -> bytes:
    """A real one-sheet workbook with ``member`` replaced by ``edit(member's bytes)``, plus ``extra`` members."""
    workbook, plain = Workbook(), io.BytesIO()
    workbook.active.append(["a", 1])
    workbook.save(plain)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain.getvalue())) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == member:
                data = edit(data)
            method = zipfile.ZIP_STORED if stored and info.filename == member else zipfile.ZIP_DEFLATED
            dst.writestr(info.filename, data, compress_type=method, compresslevel=9)
        for name, data in (extra or {}).items():
            dst.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out.getvalue()


def xlsx_core_properties(size: int = 300 * MiB) -> bytes:
    """The issue's bomb: ``docProps/core.xml`` padded with spaces, 1000 to 1 (a 300 KB file)."""
    return workbook_with("docProps/core.xml", lambda data: data.replace(b"<dc:creator>", b"<dc:creator>" + b" " * size))


def xlsx_styles(styles: int = 550_000) -> bytes:
    """``xl/styles.xml`` with many cell formats, each different: compresses under 100 to 1, parsed whole."""
    formats = b"".join(b'<xf numFmtId="%d" fontId="0" fillId="0" borderId="0" xfId="0"/>' % i for i in range(styles))
    return workbook_with("xl/styles.xml", lambda data: data.replace(b"</cellXfs>", formats + b"</cellXfs>", 1))


def xlsx_wide_row(cells: int = 1_500_000) -> bytes:
    """One row of ``cells`` numbers, stored uncompressed: no zip check objects, openpyxl builds the row whole."""
    row = b"".join(b"<c><v>%d</v></c>" % i for i in range(cells))
    return workbook_with(
        "xl/worksheets/sheet1.xml", lambda data: data.replace(b"</row>", row + b"</row>", 1), stored=True
    )


def json_empty_arrays(size: int = 10 * MiB) -> bytes:
    """``[[],[],…]``: three bytes per list, about 80 bytes each once parsed, more as XML elements."""
    return b"[" + repeat(b"[],", size) + b"[]]"


def json_lines_line(size: int = 15 * MiB) -> bytes:
    """One JSON Lines line (under the 16 MiB line limit) of small objects nested in one."""
    return b'{"a": [' + repeat(b'{"":{}},', size) + b"{}]}\n"


def xml_attributes(size: int = 8 * MiB) -> bytes:
    """``<a b=""/>`` over and over: an element and an attribute dict per nine bytes."""
    return b"<r>" + repeat(b'<a b=""/>', size) + b"</r>"


def yaml_flow_scalars(size: int = 3 * MiB // 2) -> bytes:
    """``[a,a,…]``: a YAML node (with two marks) per two bytes."""
    return b"[" + repeat(b"a,", size) + b"a]\n"


def png_pixels(width: int = 16383, height: int = 3051, mode: str = "RGBA") -> bytes:
    """A 50-megapixel PNG (the most the converter accepts) of one colour: about 200 KB."""
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, format="PNG")
    return out.getvalue()


#: YAML aliases ten deep, ten each: 10⁹ values once expanded ("billion laughs" in YAML).
YAML_BOMB = b"a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n".encode() for i in range(1, 9)
)
#: XML entities ten deep, ten each: the classic billion laughs.
XML_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode() for i in range(1, 10)
    )
    + b"]><lolz>&lol9;</lolz>"
)
