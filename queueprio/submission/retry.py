"""Celery's ``retry()`` for a queueprio job: a new copy of the same job, at the job's own priority."""

from __future__ import annotations

import logging
from typing import Any

from celery.result import AsyncResult
from django.utils import timezone

from ..broker import publish
from ..conf import settings
from ..models import Band, Job, JobState
from ..priority import next_aging_at
from ..registry import AnyTask
from .jobs import eta_from
from .submit import submit

logger = logging.getLogger("queueprio")


def requeue_for_retry(
    task: AnyTask, task_id: str, args: Any, kwargs: Any, *, producer: Any, options: dict[str, Any]
) -> AsyncResult[Any]:
    """Celery's ``retry()``: a new copy of the same job, at the job's own priority."""
    options = dict(options)
    # Celery copies the AMQP priority of the current delivery into the retry's options;
    # the job's own priority (maybe aged since) is what counts.
    options.pop("priority", None)
    now = timezone.now()
    eta = eta_from(options, now)
    job = queue_again(
        task_id,
        retries=options.get("retries") or 0,
        eta=eta,
        aging_since=eta or now,
        published_at=now,
        next_aging_at=next_aging_at(eta or now, threshold=settings.aging_threshold()),
        args=list(args or ()),
        kwargs=dict(kwargs or {}),
    )
    if job is None:  # the row was pruned or never existed: treat the retry as a new submission
        return submit(task, args, kwargs, task_id=task_id, producer=producer, **options)
    logger.info(
        "retry task_id=%s task=%s priority=%s retries=%s", task_id, task.name, job.effective_priority, job.retries
    )
    publish.publish(task, job, producer=producer, options=options)
    return task.AsyncResult(task_id)


def queue_again(task_id: str, **changes: Any) -> Job | None:
    """Put a job that left the queue (a retry) back: a new generation, and its band place again.

    A retried job was admitted once, so its place is taken without checking the band's limit;
    the claim of the new copy gives it back, like any other.
    """
    job = Job.objects.next_generation(task_id, state=JobState.QUEUED, claimed_generation=None, **changes)
    if job is not None:
        Band.objects.reacquire(job.band)
    return job
