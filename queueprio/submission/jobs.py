"""A job's ledger row and its message: Celery builds the message, queueprio keeps it with the row."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

import celery
from celery.result import AsyncResult
from django.utils import timezone

from ..broker.message import StoredMessage, capturing, header_time, strip_queueprio_headers
from ..broker.protocol import HEADER_PRIORITY, amqp_priority
from ..broker.publish import keep_message
from ..conf import settings
from ..models import Job, JobState, TaskPriority
from ..priority import next_aging_at
from ..registry import AnyTask, code_default
from .admission import Admission, timelimit_with_band

#: apply_async options that are queueprio's, never passed to Celery.
OWN_OPTIONS = ("caller_key", "idempotency_key")
#: Options a retry or a replacement inherits from the running copy's delivery, which queueprio
#: sets per copy itself (Celery's ``signature_from_request`` copies ``delivery_info`` in).
DELIVERY_OPTIONS = ("priority", "redelivered", "exchange", "routing_key")


def resolve(task: AnyTask, explicit: int | None) -> tuple[int, str]:
    """The priority ``task`` runs at and where it came from (see ``TaskPriorityQuerySet.resolve``)."""
    return TaskPriority.objects.resolve(task.name, explicit, code_default=code_default(task))


def capture(
    task: AnyTask, producer: Any, args: Any, kwargs: Any, *, task_id: str, priority: int, options: dict[str, Any]
) -> StoredMessage:
    """The message Celery's own ``apply_async`` builds for this call, captured instead of sent.

    Celery's checks run here and raise what plain Celery raises (wrong arguments: ``TypeError``;
    a soft time limit above the hard one: ``ValueError``; a value the serializer can't encode:
    kombu's ``EncodeError``) — before anything is recorded or published.
    """
    return capture_with_result(task, producer, args, kwargs, task_id=task_id, priority=priority, options=options)[0]


def capture_with_result(
    task: AnyTask, producer: Any, args: Any, kwargs: Any, *, task_id: str, priority: int, options: dict[str, Any]
) -> tuple[StoredMessage, AsyncResult[Any]]:
    """:func:`capture`, and the ``AsyncResult`` Celery made for the call, to hand to the caller.

    Handing back Celery's own object keeps what ``send_task`` did to it: its ``ignored`` mark, and
    a result backend's subscription (Redis subscribes in ``on_task_call``, and a dropped
    ``AsyncResult`` unsubscribes in its ``__del__``).
    """
    options = strip_queueprio_headers(dict(options))
    headers = {**(options.pop("headers", None) or {}), HEADER_PRIORITY: priority}
    with capturing(producer) as (capture_producer, events):
        # ``event_dispatcher`` goes through to Celery's send_task_message; celery-types lists
        # neither it nor a producer that isn't a kombu Producer.
        options.update(event_dispatcher=events)
        result = celery.Task.apply_async(
            task,
            args,
            kwargs,
            task_id=task_id,
            producer=capture_producer,  # type: ignore[arg-type]
            priority=amqp_priority(priority),
            headers=headers,
            **options,
        )
        return capture_producer.take(), result


def new_job(
    task: AnyTask,
    message: StoredMessage,
    *,
    args: Any,
    kwargs: Any,
    priority: int,
    source: str,
    now: datetime | None = None,
) -> Job:
    """An unsaved ledger row for ``message``: ``scheduled`` if its ``eta`` is ahead, else ``queued``."""
    now = now or timezone.now()
    eta = header_time(message.headers.get("eta"))
    scheduled = eta is not None and eta > now
    job = Job(
        task_id=message.task_id,
        task_name=task.name,
        args=displayable(list(args or ())),
        kwargs=displayable(dict(kwargs or {})),
        requested_priority=priority,
        effective_priority=priority,
        priority_source=source,
        state=JobState.SCHEDULED if scheduled else JobState.QUEUED,
        eta=eta,
        expires_at=header_time(message.headers.get("expires")),
        retries=int(message.headers.get("retries") or 0),
        queued_at=now,
        aging_since=eta if scheduled else now,
        published_at=None if scheduled else now,
        next_aging_at=None if scheduled else next_aging_at(now, threshold=settings.aging_threshold()),
        token=secrets.token_hex(16),
    )
    keep_message(job, message)
    return job


def admitted_to(job: Job, admitted: Admission) -> None:
    """Record the band a job was admitted to, and let its limits apply unless the call or task set some."""
    job.band_id, job.band_name = admitted.band_id, admitted.band
    message = _message(job)
    limits = timelimit_with_band(message.headers.get("timelimit"), admitted)
    if limits != list(message.headers.get("timelimit") or (None, None)):
        keep_message(job, message.with_headers(timelimit=limits))


def _message(job: Job) -> StoredMessage:
    message: StoredMessage = job._qp_message  # type: ignore[attr-defined]  # set by new_job/keep_message
    return message


def displayable(value: Any) -> Any:
    """``value`` as JSON the admin and search can show; anything JSON can't hold becomes its ``repr``.

    Only for reading: the job runs from its message, which keeps every value as the task's
    serializer encoded it.
    """
    return json.loads(json.dumps(value, default=repr))
