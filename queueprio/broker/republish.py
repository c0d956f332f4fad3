"""Republishing: a new copy of a queued job, under the same task id, at a new priority.

The one republish path: the aging sweep, lost-message recovery, an admin's "set priority"
and a duplicate submission that asks for more urgency all come here. Invariants (see also
``queueprio.worker``, which lets exactly one copy run):

* **Publish first, then record.** Copy ``g + 1`` is sent and confirmed, and only then does the
  row move from generation ``g`` to ``g + 1`` (if it is still ``queued`` at ``g``). A failed
  publish leaves the row as it was: the job keeps its previous copy.
* Each recorded copy is an ``AgingStep`` row saying why it was published.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..conf import settings
from ..models import AgingReason, AgingStep, Band, Job, JobState
from ..priority import next_aging_at
from . import publish

logger = logging.getLogger("queueprio")


@dataclass(frozen=True)
class Step:
    """One republish: why, and what else changes with it."""

    reason: str
    #: Aging restarts from now at the new priority: for a duplicate submission it becomes the requested
    #: one; an admin's becomes ``admin_priority`` (the requested priority stays what the caller asked).
    reset_aging: bool = False
    #: The band whose place the job holds from now on (its old place is given back), if it moves.
    band_id: int | None = None
    #: Who asked, for a raise by a duplicate submission (the urgent quota counts it).
    caller_key: str = ""
    #: The admin user who set the priority (an ``admin`` step).
    changed_by: str = ""


def republish(
    job: Job, priority: int, step: Step, *, now: datetime | None = None, next_at: datetime | None = None
) -> bool:
    """Publish copy ``generation + 1`` of a queued job at ``priority``, then record it.

    The one path for a single republish: an admin's "set priority", a duplicate submission that
    asks for more urgency, a recovery. Returns ``False`` (and changes nothing) if the publish
    failed or the job stopped being queued meanwhile.
    """
    now = now or timezone.now()
    old_generation, old_priority = job.generation, job.effective_priority
    job.generation, job.effective_priority = old_generation + 1, priority
    try:
        publish.send(job)
    except Exception as exc:
        logger.warning(
            "republish failed task_id=%s task=%s priority=%s->%s error=%s; keeping the previous copy",
            job.task_id,
            job.task_name,
            old_priority,
            priority,
            exc,
        )
        job.generation, job.effective_priority = old_generation, old_priority
        return False
    return record(job, old_generation, old_priority, priority, step, now=now, next_at=next_at)


def record(
    job: Job,
    old_generation: int,
    old_priority: int,
    priority: int,
    step: Step,
    *,
    now: datetime,
    next_at: datetime | None,
) -> bool:
    """Move the row to the confirmed copy's generation (if still queued at the old one) and log the step."""
    changes: dict[str, Any] = {"generation": F("generation") + 1, "effective_priority": priority, "published_at": now}
    changes["next_aging_at"] = next_aging_at(now, threshold=settings.aging_threshold()) if step.reset_aging else next_at
    if step.reset_aging and step.reason == AgingReason.ADMIN:
        changes.update(admin_priority=priority, aging_since=now)
    elif step.reset_aging:
        changes.update(requested_priority=priority, admin_priority=None, aging_since=now)
    if step.band_id is not None:
        changes["band_id"] = step.band_id
    waited = (now - job.queued_at).total_seconds()
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, state=JobState.QUEUED, generation=old_generation).update(**changes)
        if updated:
            if step.band_id is not None:
                Band.objects.release(job.band_id)  # the old place; the new one was taken before the publish
                job.band_id = step.band_id
            AgingStep.objects.create(
                job=job,
                from_priority=old_priority,
                to_priority=priority,
                generation=old_generation + 1,
                waited_seconds=waited,
                reason=step.reason,
                caller_key=step.caller_key,
                changed_by=step.changed_by,
                at=now,
            )
    logger.info(
        "age task_id=%s task=%s priority=%s->%s reason=%s generation=%s waited=%.1fs recorded=%s",
        job.task_id,
        job.task_name,
        old_priority,
        priority,
        step.reason,
        old_generation + 1,
        waited,
        bool(updated),
    )
    return bool(updated)
