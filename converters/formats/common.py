"""What every format shares: opening the source with readable errors, and checking option names."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO, Any

from converters import fsio
from converters.errors import ConversionError


def open_source(source: Path) -> IO[bytes]:
    """Open ``source`` for reading bytes, turning OS errors into readable ConversionErrors.

    Always bytes: decoding ourselves lets a UTF-8 error name its line. The caller closes it.
    ``source`` is a resolved path (``paths.confine``); it is opened without following any
    symlink (``converters.fsio``), so the file read is the file whose path was checked.
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
    return os.fdopen(fd, "rb")


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
