"""Operator actions on jobs, shared by the admin and the CLI: they use the same paths as the sweep."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.utils import timezone

from ..broker import publish
from ..broker.republish import republish
from ..conf import settings
from ..models import AgingReason, Job, JobState
from ..priority import next_aging_at, validate_priority
from ..registry import priority_tasks
from ..submission.retry import queue_again

logger = logging.getLogger("queueprio")


def set_priority(jobs: Iterable[Job], priority: int) -> int:
    """Raise or lower queued jobs to ``priority``; aging restarts from now. Returns how many moved."""
    validate_priority(priority)
    tasks = priority_tasks()
    moved = 0
    for job in jobs:
        task = tasks.get(job.task_name)
        if job.state != JobState.QUEUED or task is None or job.effective_priority == priority:
            continue
        moved += republish(task, job, priority, reason=AgingReason.ADMIN, reset_aging=True)
    return moved


def retry_failed(jobs: Iterable[Job]) -> int:
    """Run failed jobs again under the same ledger row and task id, at their requested priority."""
    tasks = priority_tasks()
    retried = 0
    now = timezone.now()
    for job in jobs:
        task = tasks.get(job.task_name)
        if job.state not in (JobState.FAILED, JobState.PUBLISH_FAILED) or task is None:
            continue
        fresh = queue_again(
            job.task_id,
            effective_priority=job.requested_priority,
            error="",
            started_at=None,
            finished_at=None,
            aging_since=now,
            published_at=now,
            next_aging_at=next_aging_at(now, threshold=settings.aging_threshold()),
        )
        if fresh is None:
            continue
        logger.info(
            "retry from admin task_id=%s task=%s priority=%s", job.task_id, job.task_name, fresh.effective_priority
        )
        publish.publish(task, fresh)
        retried += 1
    return retried
