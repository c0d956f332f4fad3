"""Tasks the tests run in real workers: each leaves a side effect the test can count."""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import shared_task
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from queueprio import PriorityTask


def append_line(path: str, line: str) -> None:
    # O_APPEND writes of one short line are atomic, so concurrent workers never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@shared_task(name="tests.record", base=PriorityTask)
def record(label: str, path: str, seconds: float = 0.0) -> str:
    """Append ``label`` to ``path`` as the task starts, then take ``seconds``."""
    append_line(path, label)
    if seconds:
        time.sleep(seconds)
    return label


@shared_task(name="tests.defaulted", base=PriorityTask, queueprio_priority=2)
def defaulted(label: str, path: str) -> str:
    append_line(path, label)
    return label


@shared_task(name="tests.flaky", base=PriorityTask, bind=True, max_retries=3)
def flaky(self: PriorityTask, path: str, failures: int) -> int:
    """Fail ``failures`` times (retrying each time), then succeed. One line per attempt."""
    append_line(path, f"attempt {self.request.retries} priority={self.request.delivery_info.get('priority')}")
    if self.request.retries < failures:
        raise self.retry(countdown=0)
    return self.request.retries


@shared_task(name="tests.block_until", base=PriorityTask)
def block_until(label: str, path: str, flag: str, timeout: float = 60.0) -> str:
    """Record the start, then hold the worker process until ``flag`` exists (or the timeout)."""
    append_line(path, label)
    deadline = time.monotonic() + timeout
    while not Path(flag).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    append_line(path, f"done:{label}")
    return label


@shared_task(name="tests.crash_worker", base=PriorityTask)
def crash_worker(label: str, path: str) -> str:
    """Record the start, then kill the worker process running it (a poison message)."""
    import signal

    append_line(path, label)
    os.kill(os.getpid(), signal.SIGKILL)
    return label  # never reached


@shared_task(name="tests.record_completion", base=PriorityTask, bind=True)
def record_completion(self: PriorityTask, label: str, path: str, seconds: float = 0.0) -> str:
    """Append ``start <label> <worker>`` as the task starts and ``done <label>`` as its last act."""
    append_line(path, f"start {label} {self.request.hostname}")
    if seconds:
        time.sleep(seconds)
    append_line(path, f"done {label}")
    return label


_connections_opened = 0


@receiver(connection_created, dispatch_uid="tests.count_connections")
def _count_connection(**kwargs: object) -> None:
    global _connections_opened
    _connections_opened += 1


@shared_task(name="tests.connections_opened", base=PriorityTask)
def connections_opened(path: str) -> int:
    """Append how many database connections this process has opened so far."""
    append_line(path, f"{os.getpid()} {_connections_opened}")
    return _connections_opened
