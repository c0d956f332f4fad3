"""What every format shares: opening the source with readable errors, and checking option names."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from converters.errors import ConversionError


def open_source(source: Path) -> IO[bytes]:
    """Open ``source`` for reading bytes, turning OS errors into readable ConversionErrors.

    Always bytes: decoding ourselves lets a UTF-8 error name its line. The caller closes it.
    """
    try:
        return open(source, "rb")
    except IsADirectoryError as exc:
        raise ConversionError(f"{source.name} is a directory, not a file") from exc
    except FileNotFoundError as exc:
        raise ConversionError(f"{source.name} does not exist") from exc
    except PermissionError as exc:
        raise ConversionError(f"{source.name} is not readable (permission denied)") from exc


def check_options(options: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ConversionError(f"unknown option(s) {', '.join(unknown)}; allowed: {known}")
