"""atomic_output: the target appears whole on success and is untouched on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from converters.atomic import atomic_output


class Boom(Exception):
    pass


def files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def write_then_fail(target: Path, exc: BaseException, *, close_first: bool = False) -> None:
    with atomic_output(target) as out:
        out.write("partial")
        if close_first:
            out.close()
        raise exc


def test_atomic_output__writes_text_to_target(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with atomic_output(target) as out:
        out.write("héllo")
    assert target.read_text(encoding="utf-8") == "héllo"
    assert files_in(tmp_path) == ["out.json"]


def test_atomic_output__writes_bytes_in_binary_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with atomic_output(target, binary=True) as out:
        out.write(b"\x00\xff")
    assert target.read_bytes() == b"\x00\xff"


@pytest.mark.parametrize(
    ("newline", "expected"), [(None, f"a{os.linesep}b".encode()), ("", b"a\nb"), ("\r\n", b"a\r\nb")]
)
def test_atomic_output__honours_newline(tmp_path: Path, newline: str | None, expected: bytes) -> None:
    target = tmp_path / "out.txt"
    with atomic_output(target, newline=newline) as out:
        out.write("a\nb")
    assert target.read_bytes() == expected


def test_atomic_output__honours_encoding(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with atomic_output(target, encoding="utf-16") as out:
        out.write("é")
    assert target.read_text(encoding="utf-16") == "é"


def test_atomic_output__writes_to_a_part_file_next_to_target(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with atomic_output(target) as out:
        temp = Path(out.name)
        assert temp.parent == tmp_path
        assert temp.name.startswith(".out.csv.")
        assert temp.name.endswith(".part")
        assert not target.exists()
    assert not temp.exists()


def test_atomic_output__keeps_old_target_until_the_end(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_output(target) as out:
        out.write("new")
        out.flush()
        assert target.read_text() == "old"
    assert target.read_text() == "new"


def test_atomic_output__creates_missing_parent_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    with atomic_output(target) as out:
        out.write("x")
    assert target.read_text() == "x"


@pytest.mark.parametrize("exc_type", [Boom, ValueError, KeyboardInterrupt, SystemExit])
def test_atomic_output__on_exception_removes_temp_and_reraises(tmp_path: Path, exc_type: type[BaseException]) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(exc_type):
        write_then_fail(target, exc_type("stop"))
    assert files_in(tmp_path) == []


def test_atomic_output__on_exception_leaves_old_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(Boom):
        write_then_fail(target, Boom())
    assert target.read_text() == "old"
    assert files_in(tmp_path) == ["out.txt"]


def test_atomic_output__cleans_up_when_the_block_closed_the_file(tmp_path: Path) -> None:
    # A failure after the caller closed the file itself must still not leave the temp file behind.
    target = tmp_path / "out.txt"
    with pytest.raises(Boom):
        write_then_fail(target, Boom(), close_first=True)
    assert files_in(tmp_path) == []


def test_atomic_output__failed_replace_removes_temp(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()  # os.replace can't put a file over a directory
    (target / "keep").write_text("x")
    with pytest.raises(IsADirectoryError), atomic_output(target) as out:
        out.write("data")
    assert files_in(tmp_path) == ["out"]
    assert files_in(target) == ["keep"]
