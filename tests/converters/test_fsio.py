"""The file read is the file whose path was checked: no symlink is followed after the check, nor a FIFO waited on."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from converters import fsio
from converters.errors import ConversionError
from converters.formats.common import open_source
from converters.formats.tabular import csv_to_json


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the tree, standing in for /etc/passwd."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.csv"
    path.write_text("secret,value\nroot,x\n")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "in.csv").write_text("name\nAda\n")
    return root


def test_open_source__reads_a_plain_file(tree: Path) -> None:
    with open_source(tree / "sub" / "in.csv") as fh:
        assert fh.read() == b"name\nAda\n"


def test_open_source__file_swapped_for_a_symlink_after_the_check_is_refused(tree: Path, secret: Path) -> None:
    source = tree / "sub" / "in.csv"  # as paths.confine returned it, before the swap
    source.unlink()
    source.symlink_to(secret)
    assert source.read_text().startswith("secret")  # control: a plain open() reads the other file
    with pytest.raises(ConversionError, match=r"^in.csv: a symbolic link is now on its path"):
        open_source(source)


def test_open_source__directory_on_the_path_swapped_for_a_symlink_is_refused(tree: Path, secret: Path) -> None:
    source = tree / "sub" / "secret.csv"
    (tree / "sub" / "in.csv").unlink()
    (tree / "sub").rmdir()
    (tree / "sub").symlink_to(secret.parent)  # the directory now leads outside
    assert source.read_text().startswith("secret")  # control: following it reads the outside file
    with pytest.raises(ConversionError, match=r"^secret.csv: a symbolic link is now on its path"):
        open_source(source)


def test_converter__refuses_the_swapped_file_and_writes_nothing(tree: Path, secret: Path) -> None:
    source = tree / "sub" / "in.csv"
    source.unlink()
    source.symlink_to(secret)
    with pytest.raises(ConversionError, match="symbolic link"):
        csv_to_json(source, tree / "out.json")
    assert not (tree / "out.json").exists()


def test_open_source__a_fifo_is_refused_without_waiting_for_a_writer(tree: Path) -> None:
    fifo = tree / "pipe.csv"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []
    opener = threading.Thread(target=lambda: outcome.append(_raised(lambda: open_source(fifo))), daemon=True)
    opener.start()
    opener.join(timeout=10)
    assert not opener.is_alive(), "open_source blocked on the FIFO"
    assert isinstance(outcome[0], ConversionError)
    assert str(outcome[0]) == "pipe.csv is not a regular file"


def test_open_directory__creates_missing_directories_without_following_symlinks(tmp_path: Path) -> None:
    fd = fsio.open_directory(tmp_path / "a" / "b", create=True)
    os.close(fd)
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    with pytest.raises(OSError, match="symlink on the path"):
        fsio.open_directory(tmp_path / "link" / "b", create=True)


def _raised(call: object) -> BaseException | None:
    try:
        call()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    return None
