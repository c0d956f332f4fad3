"""Messages published outside queueprio (an old client's ``send_task``): they run, and get a ledger row."""

from __future__ import annotations

import logging

from django.utils import timezone

from ..broker.protocol import EXTERNAL_GENERATION
from ..models import Job, JobState, PrioritySource, TaskPriority
from ..registry import AnyTask, code_default

logger = logging.getLogger("queueprio")


def adopt_external(task: AnyTask) -> int:
    """Give a message published outside queueprio a ledger row, at the default priority."""
    request = task.request
    priority, _ = TaskPriority.objects.resolve(task.name, None, code_default=code_default(task))
    now = timezone.now()
    job, created = Job.objects.get_or_create(
        task_id=request.id,
        defaults={
            "task_name": task.name,
            "args": list(request.args or ()),
            "kwargs": dict(request.kwargs or {}),
            "requested_priority": priority,
            "effective_priority": priority,
            "priority_source": PrioritySource.EXTERNAL,
            "state": JobState.STARTED,
            "generation": EXTERNAL_GENERATION,
            "claimed_generation": EXTERNAL_GENERATION,
            "queued_at": now,
            "started_at": now,
            "worker": request.hostname or "",
        },
    )
    if not created:
        Job.objects.filter(pk=job.pk).update(
            state=JobState.STARTED, claimed_generation=EXTERNAL_GENERATION, started_at=now, next_aging_at=None
        )
    logger.info("start task_id=%s task=%s priority=%s external=True", request.id, task.name, priority)
    return EXTERNAL_GENERATION
