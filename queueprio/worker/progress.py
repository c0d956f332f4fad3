"""Progress of a running job, reported by the job itself: ``queueprio.progress(...)``.

The running job's ledger row holds its progress (a fraction, a note, when), where the admin, the
CLI, ``queueprio.job(task_id)`` and the dashboard read it. Writes are throttled: a job may call
``progress`` for every row it streams; at most one write per ``QUEUEPRIO_PROGRESS_INTERVAL_SECONDS``
reaches the database (and one more when the fraction reaches 1). A call outside a queueprio job's
run (called directly, eager, another task) does nothing.

The write goes through the job's own database connection, so a job that reports progress from
inside its own ``transaction.atomic()`` block would only show it at commit: on PostgreSQL the
write is made on a second connection then; on SQLite (one writer at a time) it is skipped, since
that second connection would wait for the job's own transaction.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import celery
from django.db import connection, connections
from django.utils import timezone

from ..conf import settings
from ..models import Job

logger = logging.getLogger("queueprio")

#: Set on the run's request by the claim: the generation whose run may write progress.
GENERATION = "queueprio_generation"
NOTE_LENGTH = 200

_last: dict[str, float] = {}


def progress(
    fraction: float | None = None, note: str = "", *, done: float | None = None, total: float | None = None
) -> bool:
    """Report the running job's progress: ``fraction`` (0–1) or ``done`` of ``total``, and/or a note
    (a note alone keeps the last fraction).

    Returns whether it was written now (``False``: throttled, or not inside a job's run).
    """
    task: Any = celery.current_task
    request = getattr(task, "request", None)
    generation = getattr(request, GENERATION, None)
    if generation is None or getattr(request, "called_directly", True):
        return False
    if fraction is None and done is not None and total:
        fraction = done / total
    if fraction is not None:
        fraction = min(1.0, max(0.0, float(fraction)))
    task_id, now = str(getattr(request, "id", "")), time.monotonic()
    last = _last.get(task_id)
    if last is not None and now - last < float(settings.PROGRESS_INTERVAL_SECONDS) and fraction != 1.0:
        return False
    _last.clear()  # one job at a time per process: forget the others
    _last[task_id] = now
    return _write(task_id, int(generation), fraction, note[:NOTE_LENGTH])


def _write(task_id: str, generation: int, fraction: float | None, note: str) -> bool:
    manager: Any = Job.objects
    if connection.in_atomic_block:
        if connection.vendor == "sqlite":
            return False
        manager = manager.using(_side_alias())
    try:
        return bool(
            manager.filter(task_id=task_id, state="started", claimed_generation=generation).update(
                progress_note=note,
                progress_at=timezone.now(),
                # A note alone (a phase) keeps the last fraction.
                **({} if fraction is None else {"progress": fraction}),
            )
        )
    except Exception:  # progress is advisory: the job goes on
        logger.warning("progress not recorded task_id=%s", task_id, exc_info=True)
        return False


def _side_alias() -> str:
    """A second connection to the default database, in autocommit, for progress written mid-transaction."""
    alias = "queueprio-progress"
    if alias not in connections.settings:
        connections.settings[alias] = {**connections.settings["default"]}
    return alias
