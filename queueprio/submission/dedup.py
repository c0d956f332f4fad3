"""Idempotent submission: while a job with the same key is queued or running, join it instead."""

from __future__ import annotations

import logging
from typing import Any

from celery.result import AsyncResult

from ..broker.republish import republish
from ..locks import serialise_on
from ..models import AgingReason, Job, JobState
from ..registry import AnyTask

logger = logging.getLogger("queueprio")


class Duplicate(Exception):
    """Raised inside a submission's transaction when its key turned out to be taken: roll back and join."""


def taken(key: str) -> bool:
    """Inside the submission's transaction: does an active job hold ``key``?

    Racers with the same new key are serialised first, so exactly one of them sends a message:
    on PostgreSQL by a transaction-scoped advisory lock on the key, on SQLite by the write lock
    the (IMMEDIATE) transaction already holds. On other databases the unique index still makes
    exactly one row, but a racer's copy may be sent before its insert fails (its worker drops it).
    """
    serialise_on(f"queueprio.idempotency:{key}")
    return Job.objects.active_with_key(key) is not None


def join(task: AnyTask, key: str, priority: int) -> AsyncResult[Any] | None:
    """The active job with ``key``, raised to ``priority`` if that is more urgent; ``None`` if none.

    A duplicate never lowers a job's priority. Raising goes through the aging sweep's republish
    path (a ``dedup`` step), so exactly one copy still runs.
    """
    row = Job.objects.active_with_key(key)
    if row is None:
        return None
    task_id, state, effective = row
    raised = False
    if state == JobState.QUEUED and priority < effective:
        raised = republish(task, Job.objects.get(task_id=task_id), priority, reason=AgingReason.DEDUP, reset_aging=True)
    logger.info("dedup task_id=%s task=%s key=%s priority=%s raised=%s", task_id, task.name, key, priority, raised)
    return task.AsyncResult(task_id)
