"""Confine every file a converter touches to ``CONVERTERS_ROOT``."""

from __future__ import annotations

import os
from pathlib import Path

from queueprio import InvalidArguments, PathOutsideRoot

from .conf import settings


def root() -> Path:
    """The configured root, resolved (symlinks followed) on every call.

    Not cached: if the root is a symlink and an operator points it elsewhere, paths under the
    old target must stop being accepted at once (a few syscalls per submission).
    """
    return Path(settings.ROOT).resolve()


def confine(path: str | os.PathLike[str], *, base: Path | None = None) -> Path:
    """Resolve ``path`` (relative paths are relative to the root) and refuse anything outside.

    ``resolve()`` follows symlinks, so ``..``, an absolute path elsewhere and a symlink that
    points out of the root all end up outside it and are refused the same way.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise InvalidArguments(f"expected a file path, got {path!r}")
    if "\x00" in str(path):
        raise InvalidArguments("a file path may not contain NUL bytes")
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: no file can have that name, and the ledger can't store it.
        raise InvalidArguments(f"a file path must be valid Unicode text, got {str(path)[:100]!r}") from None
    base = base or root()
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else base / candidate).resolve()
    if not resolved.is_relative_to(base):
        raise PathOutsideRoot(f"path {str(path)!r} is outside the allowed root {str(base)!r}", path=str(path))
    try:
        resolved.exists()  # the OS's own limits: a name or a path too long is an error here, not later
    except OSError as exc:
        raise InvalidArguments(f"path {str(path)[:100]!r} can't be used: {exc.strerror}", path=str(path)) from exc
    return resolved


def relative(path: Path, *, base: Path | None = None) -> str:
    """How a confined path is stored in the ledger: relative to the root, so no host paths leak."""
    return str(path.relative_to(base or root()))


def default_target(source: Path, suffix: str) -> Path:
    return source.with_suffix(suffix)
