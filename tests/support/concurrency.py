"""Run the same callable in several threads released at once, each with its own DB connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def run_concurrently(fn: Callable[[], T], threads: int, *, timeout: float = 120.0) -> list[T]:
    """Start ``threads`` threads that call ``fn`` together (a barrier); return their results."""
    barrier = threading.Barrier(threads)
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(fn())
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)
        finally:
            connection.close()  # Django opened one for this thread

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout=timeout)
    if errors:
        raise errors[0]
    return results
