"""What every format shares: opening the source with readable errors and progress reports, and
checking option names."""

from __future__ import annotations

import errno
import io
import os
import time
from pathlib import Path
from typing import IO, Any

import queueprio
from converters import fsio
from converters.errors import ConversionError


def open_source(source: Path) -> IO[bytes]:
    """Open ``source`` for reading bytes, turning OS errors into readable ConversionErrors.

    Always bytes: decoding ourselves lets a UTF-8 error name its line. The caller closes it.
    ``source`` is a resolved path (``paths.confine``); it is opened without following any
    symlink (``converters.fsio``), so the file read is the file whose path was checked.

    Reading reports the job's progress, the bytes read of the file's size (``queueprio.progress``,
    at most every :data:`REPORT_SECONDS`): a streaming converter's bar moves as it converts; one
    that parses the whole file first shows the read, then its last phase (see :func:`phase`).
    """
    try:
        fd = fsio.open_regular_file(source)
    except IsADirectoryError as exc:
        raise ConversionError(f"{source.name} is a directory, not a file") from exc
    except FileNotFoundError as exc:
        raise ConversionError(f"{source.name} does not exist") from exc
    except PermissionError as exc:
        raise ConversionError(f"{source.name} is not readable (permission denied)") from exc
    except OSError as exc:
        raise ConversionError(_unopenable(source, exc)) from exc
    try:
        size = os.fstat(fd).st_size
        raw = io.FileIO(fd, "rb", closefd=True)
    except OSError:
        os.close(fd)
        raise
    return io.BufferedReader(_Reporting(raw, size))


#: Least seconds between two progress reports of a read (``queueprio.progress`` throttles too).
REPORT_SECONDS = 0.25


class _Reporting(io.RawIOBase):
    """A raw file that reports how much of it was read as the job's progress."""

    def __init__(self, raw: io.FileIO, size: int) -> None:
        super().__init__()
        self._raw, self._size, self._last = raw, size, 0.0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: Any) -> int | None:
        count = self._raw.readinto(buffer)
        if not count or not self._size:
            return count
        now, done = time.monotonic(), self._raw.tell()
        if now - self._last >= REPORT_SECONDS or done >= self._size:  # the whole file read: always said
            self._last = now
            queueprio.progress(done=done, total=self._size, note=f"read {_size(done)} of {_size(self._size)}")
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


def phase(note: str) -> None:
    """Say which phase a converter is in once it has read its input (parsing, encoding, writing)."""
    queueprio.progress(note=note)


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def _unopenable(source: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"{source.name}: a symbolic link is now on its path (it changed after the path was checked); refused"
    if exc.errno == errno.EINVAL:
        return f"{source.name} is not a regular file"
    return f"{source.name} can't be opened ({exc.strerror or type(exc).__name__})"


def check_options(options: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ConversionError(f"unknown option(s) {', '.join(unknown)}; allowed: {known}")
