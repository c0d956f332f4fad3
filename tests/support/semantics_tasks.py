"""Tasks for the Celery-semantics conformance suite: each leaves one line per run in a file to count."""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task
from celery.exceptions import Ignore, Reject
from django.db import transaction

from queueprio import PriorityTask
from tests.support.tasks import append_line


@shared_task(name="sem.add", base=PriorityTask)
def add(x: int, y: int, path: str = "") -> int:
    """A canvas step: ``x + y``, one line ``add <x> <y>`` per run."""
    if path:
        append_line(path, f"add {x} {y}")
    return x + y


@shared_task(name="sem.collect", base=PriorityTask)
def collect(values: list[int], path: str = "") -> int:
    """A chord body: the sum of the header's results."""
    if path:
        append_line(path, f"collect {sorted(values)}")
    return sum(values)


@shared_task(name="sem.note", base=PriorityTask)
def note(value: Any, path: str, label: str) -> Any:
    """A ``link``/``link_error`` callback: records that it ran and what it got."""
    append_line(path, f"{label} {value!r}")
    return value


@shared_task(name="sem.fail", base=PriorityTask)
def fail(path: str) -> None:
    append_line(path, "fail")
    raise ValueError("failed on purpose")


@shared_task(name="sem.headers", base=PriorityTask, bind=True)
def headers(self: PriorityTask, path: str, name: str) -> Any:
    """Records the value of the caller's header ``name`` as the worker received it."""
    value = getattr(self.request, name, None)
    append_line(path, f"header {value!r}")
    return value


@shared_task(name="sem.retry_in_atomic", base=PriorityTask, bind=True, max_retries=5)
def retry_in_atomic(self: PriorityTask, path: str, failures: int) -> int:
    """Retries ``failures`` times from inside ``transaction.atomic()``; one line per run."""
    append_line(path, f"run {self.request.retries}")
    with transaction.atomic():
        if self.request.retries < failures:
            raise self.retry(countdown=0)
    return int(self.request.retries)


@shared_task(name="sem.retry_later", base=PriorityTask, bind=True, max_retries=3)
def retry_later(self: PriorityTask, path: str, countdown: float) -> int:
    """Retries once with a countdown; one line per run with the time it started."""
    append_line(path, f"run {self.request.retries} {time.time():.3f}")
    if self.request.retries < 1:
        raise self.retry(countdown=countdown)
    return int(self.request.retries)


@shared_task(name="sem.ignore_me", base=PriorityTask)
def ignore_me(path: str) -> None:
    append_line(path, "ignore")
    raise Ignore()


@shared_task(name="sem.reject_me", base=PriorityTask, bind=True)
def reject_me(self: PriorityTask, path: str, requeue: bool) -> str:
    """Rejects its first delivery (``requeue`` as given); succeeds when it comes back."""
    append_line(path, f"run redelivered={bool(self.request.delivery_info.get('redelivered'))}")
    if not self.request.delivery_info.get("redelivered"):
        raise Reject("not now", requeue=requeue)
    return "second time"


@shared_task(name="sem.replace_me", base=PriorityTask, bind=True)
def replace_me(self: PriorityTask, path: str, with_plain: bool) -> Any:
    """Replaces itself with ``sem.add`` (a queueprio task) or ``sem.plain_add`` (plain Celery)."""
    append_line(path, "replace_me")
    target = plain_add if with_plain else add
    raise self.replace(target.s(20, 22, path))


@shared_task(name="sem.plain_add")
def plain_add(x: int, y: int, path: str = "") -> int:
    """A plain Celery task, not a PriorityTask."""
    if path:
        append_line(path, f"plain_add {x} {y}")
    return x + y


@shared_task(name="sem.plain_record")
def plain_record(label: str, path: str, seconds: float = 0.0) -> str:
    """A plain Celery task (the control of the countdown test: its ETA is held by the worker)."""
    append_line(path, label)
    time.sleep(seconds)
    return label


@shared_task(name="sem.slow", base=PriorityTask)
def slow(label: str, path: str, seconds: float) -> str:
    """``start <label>`` when it starts, ``done <label>`` when it ends: counts runs and overlaps."""
    append_line(path, f"start {label}")
    time.sleep(seconds)
    append_line(path, f"done {label}")
    return label


@shared_task(name="sem.progressing", base=PriorityTask)
def progressing(path: str, steps: int, seconds: float) -> int:
    """Reports its progress step by step, ``seconds`` apart, then records that it finished and how
    many statements reached the ledger's table meanwhile (counted at the connection, not by
    ``progress``'s own answer)."""
    from django.db import connection

    from queueprio import progress

    writes = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal writes
        writes += sql.lstrip().upper().startswith("UPDATE") and "queueprio_job" in sql
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        for step in range(steps):
            progress(done=step, total=steps, note=f"step {step}")
            time.sleep(seconds)
    append_line(path, f"writes {writes}")
    append_line(path, "done")
    return steps


class Noting(PriorityTask):
    """A task class whose ``on_success`` handler records each success (a task-level callback)."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        append_line(args[1], f"on_success {retval!r}")


@shared_task(name="sem.noted", base=Noting)
def noted(value: int, path: str) -> int:
    append_line(path, f"noted {value}")
    return value


@shared_task(name="sem.adds_callback", base=PriorityTask, bind=True)
def adds_callback(self: PriorityTask, value: int, path: str) -> int:
    """Adds a callback to its own request while it runs (Celery applies it after success)."""
    self.request.callbacks = [*(self.request.callbacks or []), note.s(path, "added")]
    append_line(path, f"adds_callback {value}")
    return value
