"""Operator actions on jobs, shared by the admin and the CLI: they use the same paths as the sweep."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.utils import timezone

from ..broker import publish
from ..broker.republish import Step, republish
from ..conf import settings
from ..models import AgingReason, Band, Job, JobState
from ..priority import next_aging_at, validate_priority
from ..registry import priority_tasks
from ..submission.admission import band_for
from ..submission.retry import queue_again
from ..worker.revoke import end_in_ledger
from .cancel import revoke

logger = logging.getLogger("queueprio")


def set_priority(jobs: Iterable[Job], priority: int, *, changed_by: str = "") -> int:
    """Raise or lower queued jobs to ``priority``; aging restarts from now, from there. Returns how many moved.

    An operator's decision, recorded as an ``admin`` step with ``changed_by`` (who), its time and
    both priorities; the job's requested priority stays what its caller asked. The job moves to
    the band of its new priority without that band's limit being checked (its old place is given
    back once the new copy is recorded).
    """
    validate_priority(priority)
    tasks = priority_tasks()
    moved = 0
    now = timezone.now()
    for job in jobs:
        if job.state != JobState.QUEUED or job.task_name not in tasks or job.effective_priority == priority:
            continue
        if job.expires_at is not None and job.expires_at <= now:  # a new copy would only be dropped
            end_in_ledger([job.task_id], JobState.EXPIRED, reason="expired while it waited")
            continue
        target = band_for(priority)
        move = target is not None and target.pk != job.band_id
        if move and target is not None:
            Band.objects.reacquire(target.pk)
        band_id = target.pk if move and target else None
        step = Step(AgingReason.ADMIN, reset_aging=True, band_id=band_id, changed_by=changed_by[:150])
        if republish(job, priority, step):
            moved += 1
        elif move and target is not None:
            Band.objects.release(target.pk)
    return moved


def retry_failed(jobs: Iterable[Job]) -> int:
    """Run failed jobs again under the same ledger row and task id, at their requested priority
    (an earlier admin change is dropped: the retry starts over)."""
    tasks = priority_tasks()
    retried = 0
    now = timezone.now()
    for job in jobs:
        if job.state not in (JobState.FAILED, JobState.PUBLISH_FAILED) or job.task_name not in tasks:
            continue
        fresh = queue_again(
            job.task_id,
            effective_priority=job.requested_priority,
            admin_priority=None,
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
        publish.publish(fresh)
        retried += 1
    return retried


def cancel(jobs: Iterable[Job]) -> int:
    """Cancel waiting (scheduled or queued) jobs for good: see ``operations.cancel.revoke``."""
    waiting = [job.task_id for job in jobs if job.state in (JobState.SCHEDULED, JobState.QUEUED, JobState.HELD)]
    return revoke(waiting) if waiting else 0
