"""A job asking to run again: Celery's ``retry()`` and ``replace()`` from inside its run, and an
operator's retry of a failed job."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from ..broker.message import FOLLOWUP, Followup
from ..broker.protocol import HEADER_PRIORITY
from ..models import Band, Job, JobState
from ..registry import AnyTask
from .jobs import DELIVERY_OPTIONS, capture, displayable, resolve

logger = logging.getLogger("queueprio")


def follow_up(
    kind: str, task: AnyTask, running: AnyTask, args: Any, kwargs: Any, *, producer: Any, options: dict[str, Any]
) -> None:
    """Record on the running request what ``retry()`` or ``replace()`` asked for (see ``Followup``).

    ``task`` is the task to run next under the running job's id (the job's own task for a retry,
    the replacement for a replace); ``running`` is the task whose run asked. The message is built
    now, by Celery, as it would send it; the worker hands the job on when the run ends.
    """
    request = running.request
    if kind == "retry":
        # The job keeps its own priority (aged, maybe): not the AMQP number of the current delivery,
        # which Celery's signature_from_request copies in with the rest of ``delivery_info``.
        options = {name: value for name, value in options.items() if name not in DELIVERY_OPTIONS}
        priority = int(getattr(request, HEADER_PRIORITY, None) or resolve(task, None)[0])
    else:  # replace: the replacement's own priority (on queueprio's scale, or its defaults)
        priority, _ = resolve(task, options.pop("priority", None))
    with task.app.producer_or_acquire(producer) as acquired:
        message = capture(task, acquired, args, kwargs, task_id=str(request.id), priority=priority, options=options)
    followup = Followup(
        kind, message, task.name, displayable(list(args or ())), displayable(dict(kwargs or {})), priority
    )
    setattr(request, FOLLOWUP, followup)
    logger.info("%s asked task_id=%s task=%s next=%s", kind, request.id, running.name, task.name)


def queue_again(task_id: str, **changes: Any) -> Job | None:
    """A failed job queued again by an operator: a new generation, and its band place again.

    Conditional on the row still being failed, so two operators racing retry it once. The job
    was admitted once, so its place is taken without checking the band's limit; the claim of
    the new copy gives it back, like any other.
    """
    with transaction.atomic():  # the row and its band's counter change together
        job = Job.objects.next_generation(
            task_id,
            states=(JobState.FAILED, JobState.PUBLISH_FAILED),
            state=JobState.QUEUED,
            claimed_generation=None,
            lease_until=None,
            **changes,
        )
        if job is not None:
            Band.objects.reacquire(job.band_id)
    return job
