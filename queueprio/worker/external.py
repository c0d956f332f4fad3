"""Messages published outside queueprio (an old client's ``send_task``): adopted only when the ledger has
no job of that id, so a message queueprio didn't publish can never run, rerun or rewrite a job it knows."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from celery.exceptions import Ignore
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from ..broker.protocol import EXTERNAL_GENERATION
from ..conf import settings
from ..models import Job, JobState, PrioritySource, TaskPriority
from ..registry import AnyTask, code_default

logger = logging.getLogger("queueprio")


def adopt_external(task: AnyTask) -> int:
    """Give a message published outside queueprio a ledger row at the default priority, and run it.

    A row of the same id from an earlier adoption whose run died (its lease passed) is taken over,
    as the message's redelivery means; any other row means the message is not the ledger's: dropped.
    """
    request = task.request
    task_id = str(request.id)
    priority, _ = TaskPriority.objects.resolve(task.name, None, code_default=code_default(task))
    now = timezone.now()
    lease = now + timedelta(seconds=float(settings.LEASE_SECONDS))
    try:
        with transaction.atomic():
            Job.objects.create(
                task_id=task_id,
                task_name=task.name,
                args=_displayable(list(request.args or ())),
                kwargs=_displayable(dict(request.kwargs or {})),
                requested_priority=priority,
                effective_priority=priority,
                priority_source=PrioritySource.EXTERNAL,
                state=JobState.STARTED,
                generation=EXTERNAL_GENERATION,
                claimed_generation=EXTERNAL_GENERATION,
                queued_at=now,
                started_at=now,
                lease_until=lease,
                worker=request.hostname or "",
            )
    except IntegrityError:
        taken = (
            Job.objects.filter(task_id=task_id, generation=EXTERNAL_GENERATION, state=JobState.STARTED)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(started_at=now, lease_until=lease, worker_losses=F("worker_losses") + 1)
        )
        if not taken:
            logger.warning("drop external copy task_id=%s task=%s: the ledger has this job", task_id, task.name)
            raise Ignore() from None
    logger.info("start task_id=%s task=%s priority=%s external=True", task_id, task.name, priority)
    return EXTERNAL_GENERATION


def _displayable(value: object) -> object:
    return json.loads(json.dumps(value, default=repr))
