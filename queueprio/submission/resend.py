"""A task id sent again: what Celery means by it, with the ledger's one row per task id.

Celery lets a task id be sent more than once: a frozen signature or canvas applied twice, or the
last task of a chain that replaced a job (``Task.replace`` freezes the replacement with the
replaced task's id). Each send is a run. queueprio keeps one row per task id, so:

* the row is **finished** (succeeded, failed, ignored, replaced, ...): the job runs again under
  the same row, with the new message, at the new call's priority, through admission like a new
  job (a new generation: every older copy is stale);
* the row is **queued, held or scheduled**: the new message replaces the waiting one (a new
  generation, and the band place a queued or held row holds); the job still runs once — the
  newer message wins;
* the row is **started** (another process runs it) or **cancelled** (revoked: it must never
  run again): nothing is sent; the caller's result is the running or revoked job's.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.result import AsyncResult
from django.db import transaction
from django.db.models import F

from ..broker import publish
from ..models import WAITING_STATES, AgingReason, AgingStep, Band, Job, JobState
from ..registry import AnyTask
from . import admission, pending
from .jobs import admitted_to

logger = logging.getLogger("queueprio")

#: What a resend copies from the fresh row onto the existing one.
_FIELDS = (
    "task_name",
    "args",
    "kwargs",
    "message_body",
    "message_meta",
    "requested_priority",
    "effective_priority",
    "priority_source",
    "state",
    "eta",
    "expires_at",
    "retries",
    "queued_at",
    "aging_since",
    "published_at",
    "next_aging_at",
    "caller_key",
    "idempotency_key",
    "band_id",
    "band_name",
)


def resend(task: AnyTask, fresh: Job) -> AsyncResult[Any]:
    """Run ``fresh`` (an unsaved row for a task id the ledger has) as Celery means a resend."""
    app = task.app
    with transaction.atomic():
        row = Job.objects.select_for_update().filter(task_id=fresh.task_id).first()
        if row is None or row.state in (JobState.STARTED, JobState.CANCELLED):
            logger.info(
                "resend ignored task_id=%s task=%s state=%s", fresh.task_id, task.name, row.state if row else "-"
            )
            return task.AsyncResult(fresh.task_id)
        holds_a_place = row.state in WAITING_STATES  # queued or held
        if fresh.state == JobState.QUEUED and holds_a_place:
            admitted = admission.Admission.of(row.band)  # it keeps its place
        elif fresh.state == JobState.QUEUED:
            admitted, _ = admission.admit(fresh.requested_priority)  # QueueFull like any submission
        else:  # scheduled: a place only once due
            admitted = admission.Admission.of(admission.band_for(fresh.requested_priority))
        admitted_to(fresh, admitted)
        changes: dict[str, Any] = {name: getattr(fresh, name) for name in _FIELDS}
        changes.update(
            generation=F("generation") + 1,
            claimed_generation=None,
            started_at=None,
            finished_at=None,
            lease_until=None,
            worker="",
            error="",
            worker_losses=0,
        )
        Job.objects.filter(pk=row.pk).update(**changes)
        if holds_a_place and fresh.state != JobState.QUEUED:
            Band.objects.release(row.band_id)
        AgingStep.objects.create(
            job=row,
            from_priority=row.effective_priority,
            to_priority=fresh.effective_priority,
            generation=row.generation + 1,
            waited_seconds=0.0,
            reason=AgingReason.RESEND,
            at=fresh.queued_at,
        )
        again = Job.objects.get(pk=row.pk)
        publish.keep_message(again, publish.message_of(fresh))
    logger.info(
        "resend task_id=%s task=%s was=%s now=%s generation=%s",
        fresh.task_id,
        task.name,
        row.state,
        again.state,
        again.generation,
    )
    if again.state == JobState.QUEUED:
        if transaction.get_connection().in_atomic_block:
            pending.publish_on_commit(app, [again])
        else:
            publish.publish(again, app=app)
    return task.AsyncResult(fresh.task_id)
