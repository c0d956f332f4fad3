"""What every converter shares (``converters.formats.common``): unusable sources fail the same readable way."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from converters.errors import ConversionError
from converters.formats import common
from converters.formats.images import image_to_webp
from converters.formats.markup import json_to_xml, json_to_yaml, xml_to_json, yaml_to_json
from converters.formats.tabular import csv_to_json, json_to_csv, xlsx_to_csv

CONVERTERS: list[Callable[..., dict[str, Any]]] = [
    csv_to_json,
    json_to_csv,
    xlsx_to_csv,
    xml_to_json,
    json_to_xml,
    yaml_to_json,
    json_to_yaml,
    image_to_webp,
]

UNUSABLE = [
    ("directory", r"^in is a directory, not a file$"),
    ("missing", r"^in does not exist$"),
    ("unreadable", r"^in is not readable \(permission denied\)$"),
]


def deny(*args: Any, **kwargs: Any) -> Any:
    raise PermissionError(13, "Permission denied")


@pytest.mark.parametrize("convert", CONVERTERS)
@pytest.mark.parametrize(("kind", "match"), UNUSABLE)
def test_converters__reject_unusable_sources(
    tmp_path: Path, monkeypatch: Any, convert: Callable[..., dict[str, Any]], kind: str, match: str
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    if kind == "directory":
        source.mkdir()
    elif kind == "unreadable":
        source.write_text('{"a": 1}')
        source.chmod(0)
        if os.geteuid() == 0:  # root reads anything: fake what open() raises for everyone else
            monkeypatch.setattr(common.fsio, "open_regular_file", deny)
    before = set(tmp_path.iterdir())
    with pytest.raises(ConversionError, match=match):
        convert(source, target)
    assert set(tmp_path.iterdir()) == before, "a failed conversion left a file behind"
