"""Open the file that was checked, not whatever its path points to now.

``paths.confine`` resolves a path (following symlinks) and checks it is inside the root; the
converter opens it later. In between, someone who can write under the root could swap the file,
or a directory on its way, for a symlink to anywhere. These helpers walk the already resolved
path one component at a time from ``/`` with ``O_NOFOLLOW``: a resolved path has no symlink in
it, so meeting one means the tree changed since the check, and the open fails (``ELOOP``)
instead of following it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_directory(path: Path, *, create: bool = False) -> int:
    """A file descriptor for directory ``path`` (absolute), every component opened without following symlinks.

    With ``create``, missing directories are made (mode ``0o777`` less the umask, like ``mkdir -p``).
    Raises ``OSError``: ``ELOOP`` for a symlink on the way, ``ENOTDIR`` for a file on the way.
    """
    path = Path(os.path.abspath(path))
    fd = os.open(path.anchor, _DIR_FLAGS)
    try:
        for name in path.parts[1:]:
            child = _open_child_directory(fd, name, create=create)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular_file(path: Path) -> int:
    """A read-only file descriptor for the regular file ``path``, no symlink followed on the way.

    Raises ``IsADirectoryError`` for a directory and ``OSError`` (``EINVAL``) for anything else that
    is not a regular file (a FIFO would otherwise block the open, a device read forever).
    """
    path = Path(os.path.abspath(path))
    directory = open_directory(path.parent)
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory)
    finally:
        os.close(directory)
    try:
        _require_regular(fd, path)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_child_directory(parent: int, name: str, *, create: bool) -> int:
    try:
        return _open_directory_at(parent, name)
    except FileNotFoundError:
        if not create:
            raise
    with contextlib.suppress(FileExistsError):  # made by someone else meanwhile: opened below all the same
        os.mkdir(name, 0o777, dir_fd=parent)
    return _open_directory_at(parent, name)


def _open_directory_at(parent: int, name: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except NotADirectoryError:
        # With O_DIRECTORY a symlink fails as "not a directory": say what it is.
        if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise OSError(errno.ELOOP, "Too many levels of symbolic links (a symlink on the path)", name) from None
        raise


def _require_regular(fd: int, path: Path) -> None:
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "Not a regular file", str(path))
