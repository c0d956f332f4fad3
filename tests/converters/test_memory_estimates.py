"""The memory estimates are from above: for the costliest shapes of each format, the estimate is
at least what the conversion really adds to the process's peak RSS (measured in a child process
with no limit and no checks).

Were an estimate below the real cost, a document could pass its check and still reach the
worker's limit; the costs per value in ``converters.formats.estimates`` come from these shapes.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from converters.formats import archive, estimates, images
from tests.converters import bombs
from tests.converters.memory_probe import MiB, probe

SIZE = MiB
UNLIMITED = {"MAX_MEMORY_MB": None, "MAX_DECOMPRESSED_BYTES": None}
rep = bombs.repeat

JSON = {
    "empty arrays": b"[" + rep(b"[],", SIZE) + b"[]]",
    "nested arrays": b"[" + rep(b"[[[[[[[[1]]]]]]]],", SIZE) + b"1]",
    "objects": b"[" + rep(b'{"a":1,"b":2},', SIZE) + b"{}]",
    "one-key objects": b"[" + rep(b'{"a":{}},', SIZE) + b"{}]",
    "floats": b"[" + rep(b"1.5,", SIZE) + b"0]",
    "unique keys": b"{" + b",".join(b'"k%d":1' % i for i in range(SIZE // 12)) + b"}",
    "astral text": b"[" + rep(b'"' + "\U0001f600".encode() + b"x" * 200 + b'",', SIZE) + b'""]',
}
#: The shapes that cost most per value, per target (from the calibration in estimates.py).
JSON_CASES = [
    ("json_to_csv", "csv", "one-key objects"),
    ("json_to_csv", "csv", "nested arrays"),
    ("json_to_xml", "xml", "nested arrays"),
    ("json_to_xml", "xml", "floats"),
    ("json_to_xml", "xml", "astral text"),
    ("json_to_yaml", "yaml", "nested arrays"),
    ("json_to_yaml", "yaml", "objects"),
    ("json_to_yaml", "yaml", "unique keys"),
]
XML = {
    "empty elements": b"<r>" + rep(b"<a/>", SIZE) + b"</r>",
    "an attribute each": b"<r>" + rep(b'<a b=""/>', SIZE) + b"</r>",
    "unique tags": b"<r><a>" + b"".join(b"<t%d/>" % i for i in range(SIZE // 10)) + b"</a></r>",
    "mixed content": b"<r>" + rep(b"<a>x<b/>y<b/>z</a>", SIZE) + b"</r>",
}
YAML = {
    "flow scalars": b"[" + rep(b"a,", SIZE // 2) + b"a]\n",
    "empty sequences": rep(b"- []\n", SIZE // 2),
    "flow mappings": b"[" + rep(b"{a: 1},", SIZE // 2) + b"{}]\n",
}


def noise(mode: str, size: tuple[int, int] = (2000, 1000)) -> bytes:
    """Noise: the image libwebp needs the most working memory for (its token buffer grows with detail)."""
    image = Image.merge("RGB", [Image.effect_noise(size, sigma) for sigma in (40, 50, 60)])
    out = io.BytesIO()
    (image.convert(mode) if mode != "RGB" else image).save(out, format="PNG")
    return out.getvalue()


def measured(tmp_path: Path, converter: str, name: str, data: bytes, **options: object) -> int:
    source = tmp_path / name
    source.write_bytes(data)
    result = probe(converter, source, settings=UNLIMITED, options=options)
    assert result.outcome == "ok" or result.outcome.startswith("ConversionError"), result.outcome
    return result.growth


@pytest.mark.parametrize(("converter", "into", "shape"), JSON_CASES)
def test_json_estimate__at_least_the_real_cost(tmp_path: Path, converter: str, into: str, shape: str) -> None:
    data = JSON[shape]
    real = measured(tmp_path, converter, "in.json", data)
    assert estimates.json_estimate(data, into) >= real, f"real {real / MiB:.0f} MiB"


@pytest.mark.parametrize("shape", sorted(XML))
def test_xml_estimate__at_least_the_real_cost(tmp_path: Path, shape: str) -> None:
    data = XML[shape]
    real = measured(tmp_path, "xml_to_json", "in.xml", data)
    assert estimates.xml_estimate(data) >= real, f"real {real / MiB:.0f} MiB"


@pytest.mark.parametrize("shape", sorted(YAML))
def test_yaml_estimate__at_least_the_real_cost(tmp_path: Path, shape: str) -> None:
    text = YAML[shape].decode()
    nodes = estimates.yaml_nodes(text)
    assert nodes is not None
    real = measured(tmp_path, "yaml_to_json", "in.yaml", YAML[shape])
    assert nodes * estimates.YAML_NODE_COST + len(text) * estimates.UNICODE_TEXT_COST >= real


@pytest.mark.parametrize(("mode", "lossless"), [("RGB", False), ("RGB", True), ("P", False), ("L", True)])
def test_image_estimate__at_least_the_real_cost(tmp_path: Path, mode: str, lossless: bool) -> None:
    real = measured(tmp_path, "image_to_webp", "in.png", noise(mode), lossless=lossless)
    estimate = 2000 * 1000 * images._pixel_cost(mode, lossless) + images.FIXED_COST
    assert estimate >= real, f"real {real / MiB:.0f} MiB, estimate {estimate / MiB:.0f} MiB"


def test_workbook_estimate__at_least_the_real_cost(tmp_path: Path) -> None:
    data = bombs.xlsx_styles(100_000)
    real = measured(tmp_path, "xlsx_to_csv", "in.xlsx", data)
    with zipfile.ZipFile(io.BytesIO(data)) as workbook:
        whole = sum(info.file_size for info in workbook.infolist() if archive._parsed_whole(info.filename))
    assert whole * archive.PARSED_WHOLE_COST >= real, f"real {real / MiB:.0f} MiB"
