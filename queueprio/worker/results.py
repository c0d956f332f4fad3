"""A result backend that writes where the ledger already writes: django-celery-results' table, faster.

``LedgerBackend`` is django-celery-results' ``DatabaseBackend`` (its ``TaskResult`` table, its
admin, its chord counting and group results, every read) with one change: a result is written
with one SQL upsert instead of the ORM's get-or-create-then-save, and

* a queueprio job's ``STARTED`` is written in the claim's own transaction (``worker.claim``);
* a queueprio job's outcome is written in the same transaction as the ledger's record of how
  the run ended (``JobQuerySet.finish``): the run leaves its outcome on the request
  (:func:`defer_finish`) and this backend applies both when Celery stores the result.

So a job's life costs two commits on the worker (claim, finish), like plain Celery storing its
results in django-celery-results, where it cost four before. ``configure(app)`` makes it the
result backend when django-celery-results is installed (``queueprio.worker.results:LedgerBackend``;
any other backend works too: the run then records its outcome itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import states
from django.db import connections, transaction
from django.utils import timezone

# django-celery-results ships no type information: its classes are Any to the type checker.
from django_celery_results.backends.database import DatabaseBackend  # type: ignore[import-untyped]
from django_celery_results.models import TaskResult

from ..models import Job
from ..registry import AnyTask
from .database import retrying

#: The attribute of a run's request that carries its :class:`Outcome` to the backend.
OUTCOME = "queueprio_outcome"

_COLUMNS = (
    "task_id",
    "status",
    "result",
    "traceback",
    "meta",
    "content_encoding",
    "content_type",
    "periodic_task_name",
    "task_name",
    "task_args",
    "task_kwargs",
    "worker",
    "date_created",
    "date_done",
    "date_started",
)


@dataclass(frozen=True)
class Outcome:
    """How a run ended, for the backend to record with its result."""

    generation: int
    state: str
    error: str


def is_ledger_backend(task: AnyTask) -> bool:
    return isinstance(task.backend, LedgerBackend)


def defer_finish(task: AnyTask, generation: int, state: str, error: str = "") -> bool:
    """Leave the ledger's record of this run to the result backend, if it will store a result.

    Returns ``False`` when it won't (another backend, or the result is ignored): the caller then
    records the outcome itself.
    """
    request = task.request
    if not is_ledger_backend(task) or ignores_result(task):
        return False
    setattr(request, OUTCOME, Outcome(generation, state, error))
    return True


def ignores_result(task: AnyTask) -> bool:
    """Celery 5.6's ``get_actual_ignore_result`` (5.5 lacks it): the request's explicit choice wins."""
    request = task.request
    explicit = request.__dict__.get("ignore_result") if hasattr(request, "__dict__") else None
    return bool(task.ignore_result if explicit is None else explicit)


class LedgerBackend(DatabaseBackend):  # type: ignore[misc]  # django-celery-results is untyped
    def _store_result(
        self,
        task_id: str,
        result: Any,
        status: str,
        traceback: Any = None,
        request: Any = None,
        using: str | None = None,
    ) -> Any:
        content_type, content_encoding, encoded = self.encode_content(result)
        meta = {**self._get_meta_from_request(request), "children": self.current_task_children(request)}
        _, _, encoded_meta = self.encode_content(meta)
        row = {
            "task_id": task_id,
            "status": status,
            "result": encoded,
            "traceback": traceback,
            "meta": encoded_meta,
            "content_encoding": content_encoding,
            "content_type": content_type,
            **self._get_extended_properties(request, traceback),
        }
        outcome: Outcome | None = getattr(request, OUTCOME, None) if request is not None else None
        alias = using or "default"

        def write() -> None:
            with transaction.atomic(using=alias):
                if outcome is not None and status in states.READY_STATES:
                    Job.objects.using(alias).finish(
                        task_id, outcome.generation, state=outcome.state, error=outcome.error, now=timezone.now()
                    )
                upsert(row, using=alias, now=timezone.now())

        retrying(write, what="finish", using=alias)  # a database restart: wait (worker.database)
        return result


#: django-celery-results added ``date_started`` in 2.6; the lowest version queueprio admits lacks it.
HAS_DATE_STARTED = any(field.name == "date_started" for field in TaskResult._meta.get_fields())
COLUMNS = _COLUMNS if HAS_DATE_STARTED else tuple(c for c in _COLUMNS if c != "date_started")


def upsert(row: dict[str, Any], *, using: str, now: datetime) -> None:
    """Insert or update ``row`` in django-celery-results' table: one statement (SQLite, PostgreSQL)."""
    connection = connections[using]
    quote = connection.ops.quote_name
    table = quote(TaskResult._meta.db_table)
    started_now = now if row["status"] == states.STARTED else None
    values = {**row, "date_created": now, "date_done": now, "date_started": started_now}
    names = ", ".join(quote(c) for c in COLUMNS)
    marks = ", ".join(["%s"] * len(COLUMNS))
    kept = {"task_id", "date_created", "date_started"}
    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in COLUMNS if c not in kept)
    if HAS_DATE_STARTED:
        started = quote("date_started")
        # A row that was STARTED keeps its start time; a STARTED written now sets it.
        updates += f", {started} = COALESCE({table}.{started}, excluded.{started})"
    sql = f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({quote('task_id')}) DO UPDATE SET {updates}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [values[c] for c in COLUMNS])


def store_started(task: AnyTask, info: dict[str, Any], *, using: str = "default") -> None:
    """Celery's ``task_track_started`` row, written by the claim inside its own transaction."""
    backend: Any = task.backend
    request = task.request
    content_type, content_encoding, encoded = backend.encode_content(info)
    meta = {**backend._get_meta_from_request(request), "children": []}
    row = {
        "task_id": str(request.id),
        "status": states.STARTED,
        "result": encoded,
        "traceback": None,
        "meta": backend.encode_content(meta)[2],
        "content_encoding": content_encoding,
        "content_type": content_type,
        **backend._get_extended_properties(request, None),
    }
    upsert(row, using=using, now=timezone.now())
