"""Write a converter's output all at once or not at all: a temp file renamed onto the target."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_output(
    target: Path, *, binary: bool = False, encoding: str = "utf-8", newline: str | None = None
) -> Iterator[IO[Any]]:
    """Yield a file that becomes ``target`` only if the ``with`` block finishes without an exception.

    The data goes to ``.<name>.<random>.part`` next to ``target`` (same directory, so the final
    ``os.replace`` is an atomic rename on one filesystem). On normal exit the file is flushed,
    fsynced and renamed over ``target``; on any exception it is closed and deleted and the
    exception propagates, so readers see the old target, or none, never a partial one.
    The parent directory is created if missing. Like ``mkstemp``, the file is created ``0o600``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    text_args: dict[str, Any] = {} if binary else {"encoding": encoding, "newline": newline}
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115  (closed below, on both paths)
        mode="wb" if binary else "w",
        dir=target.parent,
        delete=False,
        prefix=f".{target.name}.",
        suffix=".part",
        **text_args,
    )
    try:
        yield tmp
        tmp.flush()
        os.fsync(tmp.fileno())
        tmp.close()
        os.replace(tmp.name, target)
    except BaseException:
        # BaseException too: a worker shutdown (SystemExit, KeyboardInterrupt) must not leave a .part file.
        tmp.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp.name)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable across a power cut; not possible (nor needed) on every OS.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
