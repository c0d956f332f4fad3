"""atomic_output: the target appears whole on success and is untouched on failure."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from converters.atomic import atomic_output
from converters.errors import ConversionError


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


# --- who can read the output: the umask, or CONVERTERS_FILE_MODE ----------------------------------


def write_file(target: Path) -> int:
    with atomic_output(target) as out:
        out.write("x")
    return stat.S_IMODE(target.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077], ids=["022", "027", "077"])
def test_atomic_output__mode_is_0666_less_the_umask(tmp_path: Path, umask: int) -> None:
    # The issue: tempfile made every output 0600, unreadable to a web server running as another user.
    previous = os.umask(umask)
    try:
        mode = write_file(tmp_path / "out.json")
    finally:
        os.umask(previous)
    assert mode == 0o666 & ~umask  # 0644 under the usual 022


def test_atomic_output__file_mode_setting_wins_over_the_umask(tmp_path: Path, settings: Any) -> None:
    settings.CONVERTERS_FILE_MODE = 0o640
    previous = os.umask(0o077)
    try:
        mode = write_file(tmp_path / "out.json")
    finally:
        os.umask(previous)
    assert mode == 0o640


@pytest.mark.parametrize("value", [0o1777, -1, "0644", True, 6.4])
def test_atomic_output__a_bad_file_mode_setting_is_a_configuration_error(
    tmp_path: Path, settings: Any, value: object
) -> None:
    settings.CONVERTERS_FILE_MODE = value
    with pytest.raises(ImproperlyConfigured, match="CONVERTERS_FILE_MODE"), atomic_output(tmp_path / "out") as out:
        out.write("x")
    assert files_in(tmp_path) == []


def test_atomic_output__output_directory_swapped_for_a_symlink_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").symlink_to(elsewhere)  # "out/" was a directory when the target was confined
    with pytest.raises(ConversionError, match=r"^x.json: a symbolic link is now on the output path"):
        write_file(tmp_path / "out" / "x.json")
    assert files_in(elsewhere) == []
