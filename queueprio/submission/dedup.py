"""Idempotent submission: while a job with the same key is queued or running, join it instead."""

from __future__ import annotations

import logging
from typing import Any

from celery.result import AsyncResult
from django.db import transaction
from django.utils import timezone

from ..broker.outcome import store_revoked
from ..broker.republish import Step, republish
from ..conf import settings
from ..locks import serialise_on
from ..models import AgingReason, AgingStep, Band, Job, JobState
from ..priority import next_aging_at
from ..registry import AnyTask
from . import admission

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


def join(task: AnyTask, key: str, priority: int, *, caller_key: str = "") -> AsyncResult[Any] | None:
    """The active job with ``key``, raised to ``priority`` if that is more urgent; ``None`` if none.

    A duplicate never lowers a job's priority. A raise is admitted like a submission at the new
    priority: it takes a place in the new priority's band (``QueueFull`` if that band is full;
    its old place is given back once the raise is recorded) and the urgent quota counts it.
    Raising goes through the republish path (a ``dedup`` step), so exactly one copy still runs.
    """
    row = Job.objects.active_with_key(key)
    if row is None:
        return None
    task_id, state, effective, expired = row
    if expired and state != JobState.STARTED:
        # Its expires passed before it ran: ended here (or by whoever got there first), and this
        # submission makes a new job. Joining would hand the caller a job that never runs.
        _end_expired(task.app, task_id)
        return None
    raised = False
    if priority < effective and state in (JobState.SCHEDULED, JobState.HELD):
        target = admission.band_for(priority) if state == JobState.SCHEDULED else None
        raised = Job.objects.raise_waiting(
            task_id,
            priority,
            band_id=target.pk if target else None,
            next_aging=next_aging_at(timezone.now(), threshold=settings.aging_threshold()),
        )
        if raised:  # no copy to publish, but a step to record (the quota counts the caller's raises)
            _record_raise(Job.objects.get(task_id=task_id), effective, priority, caller_key)
        else:  # it moved meanwhile (came due, or was released): raise it where it is now
            now_queued = Job.objects.filter(task_id=task_id, state=JobState.QUEUED).first()
            if now_queued is not None and priority < now_queued.effective_priority:
                raised = _raise_queued(now_queued, priority, caller_key)
    elif priority < effective and state == JobState.QUEUED:
        raised = _raise_queued(Job.objects.get(task_id=task_id), priority, caller_key)
    logger.info("dedup task_id=%s task=%s key=%s priority=%s raised=%s", task_id, task.name, key, priority, raised)
    return task.AsyncResult(task_id)


def _record_raise(job: Job, old_priority: int, priority: int, caller_key: str) -> None:
    now = timezone.now()
    AgingStep.objects.create(
        job=job,
        from_priority=old_priority,
        to_priority=priority,
        generation=job.generation,
        waited_seconds=(now - job.queued_at).total_seconds(),
        reason=AgingReason.DEDUP,
        caller_key=caller_key[:200],
        at=now,
    )


def _end_expired(app: Any, task_id: str) -> bool:
    """End the waiting job ``task_id`` as ``expired`` if its ``expires`` has passed (the sweep
    would, at its next round); its caller gets Celery's ``REVOKED``. Whether it ended it here."""
    now, reason = timezone.now(), "expired while it waited"
    ended = Job.objects.filter(expires_at__lte=now).end_waiting(task_id, JobState.EXPIRED, error=reason, now=now)
    if ended:
        store_revoked(app, Job.objects.get(task_id=task_id), reason)
    return ended


def _raise_queued(job: Job, priority: int, caller_key: str) -> bool:
    target = admission.band_for(priority)
    moves = target is not None and target.pk != job.band_id
    if moves:
        with transaction.atomic():
            taken, _ = admission.admit(priority)  # QueueFull: refused like any submission there
    step = Step(AgingReason.DEDUP, reset_aging=True, band_id=taken.band_id if moves else None, caller_key=caller_key)
    raised = republish(job, priority, step)
    if moves and not raised:
        Band.objects.release(taken.band_id)  # the raise didn't happen: give the new place back
    return raised
