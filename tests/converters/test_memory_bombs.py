"""Every kind of memory bomb is refused before it costs memory; without its check, the same file takes far more.

Each conversion runs in a child process (``memory_probe``) whose peak RSS is measured, so a bomb
never runs in the test process, and a guard limit keeps even a control run from taking the
machine. With ``CONVERTERS_MAX_MEMORY_MB`` at 512 (a document may use 256 MiB), the checked run
fails with a readable ``ConversionError`` while the child stays near its ~65 MiB start; the
control, the same file with that one check replaced by a no-op, goes over the 512 MiB limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.converters import bombs
from tests.converters.memory_probe import MiB, probe

LIMIT_MB = 512
LIMITED = {"MAX_MEMORY_MB": LIMIT_MB}
#: A checked run may grow this far: the interpreter and Django (~65 MiB) plus the input read so far.
CHECKED_PEAK = 160 * MiB


@dataclass(frozen=True)
class Bomb:
    kind: str
    converter: str
    file: str
    make: Callable[[], bytes]
    check: str  # "module:function" the control replaces by a no-op
    says: str
    settings: dict[str, object]


BOMBS = [
    Bomb(
        "xlsx member inflating 1000 to 1 (the issue's docProps/core.xml)",
        "xlsx_to_csv",
        "core.xlsx",
        bombs.xlsx_core_properties,
        "converters.formats.archive:check_workbook_archive",
        "inflates 306,05",
        {},  # the ratio check doesn't depend on the memory limit: default settings
    ),
    Bomb(
        "xlsx parts parsed whole (styles.xml, under 100 to 1)",
        "xlsx_to_csv",
        "styles.xlsx",
        bombs.xlsx_styles,
        "converters.formats.archive:check_estimate",
        "bytes of workbook parts parsed whole would need about",
        LIMITED,
    ),
    Bomb(
        "JSON of empty arrays made into XML",
        "json_to_xml",
        "arrays.json",
        bombs.json_empty_arrays,
        "converters.formats.estimates:check_json",
        "JSON values made into XML elements would need about",
        LIMITED,
    ),
    Bomb(
        "one JSON Lines line of small objects",
        "json_to_csv",
        "line.jsonl",
        bombs.json_lines_line,
        "converters.formats.estimates:check_json",
        "line 1: 7,864,325 JSON values would need about",
        LIMITED,
    ),
    Bomb(
        "XML elements with an attribute each",
        "xml_to_json",
        "attributes.xml",
        bombs.xml_attributes,
        "converters.formats.estimates:check_xml",
        "XML elements and 932,067 attributes would need about",
        LIMITED,
    ),
    Bomb(
        "YAML flow sequence of one-letter scalars",
        "yaml_to_json",
        "scalars.yaml",
        bombs.yaml_flow_scalars,
        "converters.formats.estimates:check_yaml",
        "YAML nodes would need more than 256 MiB",
        LIMITED,
    ),
    Bomb(
        "PNG of 50 megapixels in 200 KB",
        "image_to_webp",
        "pixels.png",
        bombs.png_pixels,
        "converters.formats.images:check_estimate",
        "16383x3051 pixels (RGBA, 26 bytes each to convert) would need about",
        LIMITED,
    ),
]


@pytest.fixture(scope="module")
def bomb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bombs")


def made(bomb_dir: Path, name: str, make: Callable[[], bytes]) -> Path:
    path = bomb_dir / name
    if not path.exists():
        path.write_bytes(make())
    return path


@pytest.mark.parametrize("bomb", BOMBS, ids=[bomb.file for bomb in BOMBS])
def test_bomb__refused_readably_before_it_takes_memory(bomb_dir: Path, bomb: Bomb) -> None:
    source = made(bomb_dir, bomb.file, bomb.make)
    checked = probe(bomb.converter, source, settings=bomb.settings)
    assert checked.outcome.startswith(f"ConversionError: {bomb.file}: "), checked.outcome
    assert bomb.says in checked.outcome
    assert len(checked.outcome) < 400
    assert checked.peak_rss < CHECKED_PEAK, f"{checked.peak_mib:.0f} MiB with the check"
    assert not (bomb_dir / f"{bomb.file}.out").exists()


@pytest.mark.parametrize("bomb", BOMBS, ids=[bomb.file for bomb in BOMBS])
def test_bomb__control_without_its_check_goes_over_the_limit(bomb_dir: Path, bomb: Bomb) -> None:
    source = made(bomb_dir, bomb.file, bomb.make)
    unchecked = probe(bomb.converter, source, settings=bomb.settings, without=(bomb.check,))
    assert unchecked.outcome == "ok"
    assert unchecked.peak_rss > LIMIT_MB * MiB, f"{unchecked.peak_mib:.0f} MiB without the check"


def test_limit__a_bomb_no_estimate_sees_fails_at_the_limit_with_a_readable_error(bomb_dir: Path) -> None:
    # One row of 1.5 million cells: openpyxl builds the row whole, and no check counts cells.
    source = made(bomb_dir, "wide.xlsx", bombs.xlsx_wide_row)
    limited = probe("xlsx_to_csv", source, settings=LIMITED, apply_limit=True)
    assert limited.outcome == (
        f"ConversionError: wide.xlsx: converting it needs more memory than the {LIMIT_MB} MiB limit per worker "
        "process (CONVERTERS_MAX_MEMORY_MB); the input is too large or expands too much"
    )
    # RLIMIT_DATA counts data, RSS also counts the libraries' code (~20 MiB): the limit plus that.
    assert limited.peak_rss < (LIMIT_MB + 48) * MiB, f"{limited.peak_mib:.0f} MiB under the limit"
    assert not (bomb_dir / "wide.xlsx.out").exists()
    # Control: the same job without the limit.
    unlimited = probe("xlsx_to_csv", source, settings=LIMITED)
    assert unlimited.outcome == "ok"
    assert unlimited.peak_rss > (LIMIT_MB + 256) * MiB, f"{unlimited.peak_mib:.0f} MiB without the limit"


@pytest.mark.parametrize(
    ("converter", "file", "content", "says"),
    [
        ("xml_to_json", "laughs.xml", "entity", "entity declarations are not allowed"),
        ("yaml_to_json", "aliases.yaml", "alias", "more than 5,000,000 values"),
    ],
)
def test_bomb__checks_that_were_there_already_stay_cheap(
    bomb_dir: Path, converter: str, file: str, content: str, says: str
) -> None:
    source = made(bomb_dir, file, lambda: bombs.XML_BOMB if content == "entity" else bombs.YAML_BOMB)
    checked = probe(converter, source)  # default settings: these checks don't depend on them
    assert checked.outcome.startswith(f"ConversionError: {file}: "), checked.outcome
    assert says in checked.outcome
    assert checked.peak_rss < 256 * MiB, f"{checked.peak_mib:.0f} MiB"
