"""How a run that didn't simply succeed or fail hands its job on, once the task body is over.

The body may have run inside ``transaction.atomic()``; nothing here runs before that block
ended, so a rollback can't undo the row's change while its message stands:

* ``retry()``: the row waits again at a new generation with the retry's message (``scheduled``
  if the retry has a countdown), its band place taken again; the new copy runs it once.
* ``replace()`` with a queueprio task: the same, under the replacement's name and message.
  ``replace()`` with anything else (or a chain whose last task gets the id later): the row ends
  ``replaced``; the id comes back through the submission path if a queueprio task sends it.
* ``Reject(requeue=True)``: the row waits again at the *same* generation; RabbitMQ requeues the
  very copy, which claims it as usual. ``Reject(requeue=False)``: ``rejected``.
* ``Ignore``: ``ignored``.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..broker import publish
from ..broker.message import FOLLOWUP, REPLACED, Followup, header_time
from ..conf import settings
from ..models import AgingReason, AgingStep, Band, Job, JobState
from ..priority import next_aging_at
from ..registry import AnyTask

logger = logging.getLogger("queueprio")


def pending_followup(task: AnyTask) -> Followup | None:
    followup: Followup | None = getattr(task.request, FOLLOWUP, None)
    return followup


def hand_on(task: AnyTask, generation: int, followup: Followup) -> None:
    """Apply a retry or a replace: the row waits again at a new generation, then its copy goes out."""
    task_id, now = str(task.request.id), timezone.now()
    message = followup.message
    eta = header_time(message.headers.get("eta"))
    scheduled = eta is not None and eta > now
    changes = {
        "state": JobState.SCHEDULED if scheduled else JobState.QUEUED,
        "generation": F("generation") + 1,
        "task_name": followup.task_name,
        "args": followup.args,
        "kwargs": followup.kwargs,
        "message_body": message.body,
        "message_meta": message.meta_text(),
        "retries": int(message.headers.get("retries") or 0),
        "eta": eta,
        "expires_at": header_time(message.headers.get("expires")),
        "effective_priority": followup.priority,
        "aging_since": eta if scheduled else now,
        "published_at": None if scheduled else now,
        "next_aging_at": None if scheduled else next_aging_at(now, threshold=settings.aging_threshold()),
    }
    with transaction.atomic():
        if not Job.objects.run_again(task_id, generation, **changes):
            logger.warning("%s not recorded task_id=%s: the run no longer holds the job", followup.kind, task_id)
            return
        job = Job.objects.get(task_id=task_id)
        AgingStep.objects.create(
            job=job,
            from_priority=followup.priority,
            to_priority=followup.priority,
            generation=job.generation,
            waited_seconds=0.0,
            reason=AgingReason.RETRY if followup.kind == "retry" else AgingReason.RESEND,
            at=now,
        )
    logger.info(
        "%s task_id=%s next=%s generation=%s scheduled=%s",
        followup.kind,
        task_id,
        followup.task_name,
        job.generation,
        scheduled,
    )
    if not scheduled:
        publish_or_reschedule(job, now)


def publish_or_reschedule(job: Job, now: datetime) -> None:
    """Publish a job that waits again; if the broker won't take it, let the due scheduler try."""
    try:
        publish.send(job)
    except Exception as exc:
        logger.warning("publish failed task_id=%s error=%r; the due scheduler will publish it", job.task_id, exc)
        with transaction.atomic():
            if Job.objects.filter(pk=job.pk, state=JobState.QUEUED, generation=job.generation).update(
                state=JobState.SCHEDULED, eta=now, published_at=None, next_aging_at=None
            ):
                Band.objects.release(job.band_id)


def requeue(task: AnyTask, generation: int) -> None:
    """``Reject(requeue=True)``: the same copy comes back from RabbitMQ and claims the job again."""
    task_id = str(task.request.id)
    with transaction.atomic():
        if Job.objects.run_again(task_id, generation, state=JobState.QUEUED):
            logger.info("requeue task_id=%s generation=%s", task_id, generation)


def ended_without_result(task: AnyTask) -> str:
    """The terminal state of a run that raised ``Ignore``: replaced by a task outside queueprio, or ignored."""
    return JobState.REPLACED if getattr(task.request, REPLACED, False) else JobState.IGNORED
