"""Write a converter's output all at once or not at all: a temp file renamed onto the target."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from django.core.exceptions import ImproperlyConfigured

from . import fsio
from .conf import settings
from .errors import ConversionError

#: Attempts at a temp name no one else has taken (each a fresh random name).
_NAME_ATTEMPTS = 100


@contextlib.contextmanager
def atomic_output(
    target: Path, *, binary: bool = False, encoding: str = "utf-8", newline: str | None = None
) -> Iterator[IO[Any]]:
    """Yield a file that becomes ``target`` only if the ``with`` block finishes without an exception.

    The data goes to ``.<name>.<random>.part`` next to ``target`` (same directory, so the final
    rename is atomic on one filesystem). On normal exit the file is flushed, fsynced and renamed
    over ``target``; on any exception it is closed and deleted and the exception propagates, so
    readers see the old target, or none, never a partial one. Missing parent directories are
    created. The target's directory is opened without following symlinks (``converters.fsio``)
    and everything after goes through that descriptor, so the file lands where its path was checked.

    The file's mode is ``CONVERTERS_FILE_MODE`` if set, else ``0o666`` less the umask (``0o644``
    under the usual one): readable by, say, a web server running as another user.
    """
    mode = file_mode()
    directory = _open_target_directory(target)
    try:
        name, fd = _create_part_file(directory, target.name)
        try:
            if mode is not None:
                os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            _unlink(name, directory)
            raise
        part = _file_object(fd, target.parent / name, binary=binary, encoding=encoding, newline=newline)
        with _removed_on_error(part, name, directory):
            yield part
            part.flush()
            os.fsync(part.fileno())
            part.close()
            os.replace(name, target.name, src_dir_fd=directory, dst_dir_fd=directory)
        _fsync(directory)
    finally:
        os.close(directory)


def file_mode() -> int | None:
    """``CONVERTERS_FILE_MODE``, checked: permission bits only (``0o000``–``0o777``), or ``None``."""
    value: object = settings.FILE_MODE
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ImproperlyConfigured(f"CONVERTERS_FILE_MODE must be None or permission bits like 0o644; got {value!r}")
    return value


def _open_target_directory(target: Path) -> int:
    try:
        return fsio.open_directory(target.parent, create=True)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConversionError(
                f"{target.name}: a symbolic link is now on the output path (it changed after the path was checked); "
                "refused"
            ) from exc
        raise


def _create_part_file(directory: int, target_name: str) -> tuple[str, int]:
    """A new, empty ``.<target>.<random>.part`` in ``directory``: its name and a write descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(_NAME_ATTEMPTS):
        name = f".{target_name}.{secrets.token_hex(4)}.part"
        try:
            # 0o666: the kernel takes the umask off, as for any file the process creates.
            return name, os.open(name, flags, 0o666, dir_fd=directory)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", f".{target_name}.*.part")


def _file_object(fd: int, path: Path, *, binary: bool, encoding: str, newline: str | None) -> IO[Any]:
    """``fd`` as a file object named ``path`` (what callers see as ``.name``); it owns ``fd`` from here."""
    raw = io.FileIO(fd, "wb")
    raw.name = str(path)
    try:
        buffered = io.BufferedWriter(raw)
        return buffered if binary else io.TextIOWrapper(buffered, encoding=encoding, newline=newline)
    except BaseException:
        raw.close()
        raise


@contextlib.contextmanager
def _removed_on_error(part: IO[Any], name: str, directory: int) -> Iterator[None]:
    try:
        yield
    except BaseException:
        # BaseException too: a worker shutdown (SystemExit, KeyboardInterrupt) must not leave a .part file.
        part.close()
        _unlink(name, directory)
        raise


def _unlink(name: str, directory: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=directory)


def _fsync(directory: int) -> None:
    # Makes the rename itself durable across a power cut; not possible (nor needed) on every OS.
    with contextlib.suppress(OSError):
        os.fsync(directory)
