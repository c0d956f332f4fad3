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
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..conf import settings
from ..models import AgingStep, Job, JobState
from ..priority import next_aging_at
from ..registry import AnyTask
from . import publish

logger = logging.getLogger("queueprio")


def republish(
    task: AnyTask,
    job: Job,
    priority: int,
    *,
    reason: str,
    now: datetime | None = None,
    next_at: datetime | None = None,
    reset_aging: bool = False,
) -> bool:
    """Publish copy ``generation + 1`` of a queued job at ``priority``, then record it.

    The one republish path: aging, recovery, an admin's "set priority" and a duplicate
    submission that asks for more urgency all come here. Returns ``False`` (and changes
    nothing) if the publish failed or the job stopped being queued meanwhile.
    """
    now = now or timezone.now()
    old_generation, old_priority = job.generation, job.effective_priority
    job.generation, job.effective_priority = old_generation + 1, priority
    try:
        publish.send(task, job)
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
    return record(
        job, old_generation, old_priority, priority, reason=reason, now=now, next_at=next_at, reset_aging=reset_aging
    )


def record(
    job: Job,
    old_generation: int,
    old_priority: int,
    priority: int,
    *,
    reason: str,
    now: datetime,
    next_at: datetime | None,
    reset_aging: bool = False,
) -> bool:
    """Move the row to the confirmed copy's generation (if still queued at the old one) and log the step."""
    changes = {"generation": F("generation") + 1, "effective_priority": priority, "published_at": now}
    changes["next_aging_at"] = next_at if not reset_aging else next_aging_at(now, threshold=settings.aging_threshold())
    if reset_aging:
        changes.update(requested_priority=priority, aging_since=now)
    waited = (now - job.queued_at).total_seconds()
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, state=JobState.QUEUED, generation=old_generation).update(**changes)
        if updated:
            AgingStep.objects.create(
                job=job,
                from_priority=old_priority,
                to_priority=priority,
                generation=old_generation + 1,
                waited_seconds=waited,
                reason=reason,
                at=now,
            )
    logger.info(
        "age task_id=%s task=%s priority=%s->%s reason=%s generation=%s waited=%.1fs recorded=%s",
        job.task_id,
        job.task_name,
        old_priority,
        priority,
        reason,
        old_generation + 1,
        waited,
        bool(updated),
    )
    return bool(updated)
