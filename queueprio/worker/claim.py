"""The claim: does this copy of a job run? One conditional UPDATE; the invariants are in ``queueprio.worker``."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from billiard.exceptions import WorkerLostError
from celery.exceptions import Ignore
from django.db import transaction
from django.utils import timezone

from ..broker.protocol import HEADER_BAND, HEADER_GENERATION, HEADER_PRIORITY, HEADER_QUEUED_AT, HEADER_REQUESTED
from ..conf import settings
from ..models import Band, Job
from ..registry import AnyTask
from .external import adopt_external

logger = logging.getLogger("queueprio")

#: How often a copy that arrived before its row was committed looks for the row again.
CLAIM_POLL_SECONDS = 0.02


def claim(task: AnyTask) -> int:
    """Claim the job for this copy and return its generation, or raise ``Ignore`` if stale."""
    request = task.request
    generation = getattr(request, HEADER_GENERATION, None)
    if generation is None:
        return adopt_external(task)
    redelivered = bool((request.delivery_info or {}).get("redelivered"))
    deadline = time.monotonic() + float(settings.CLAIM_WAIT_SECONDS)
    while True:
        now = timezone.now()
        with transaction.atomic():
            won = Job.objects.claim(
                str(request.id), generation, redelivered=redelivered, worker=request.hostname or "", now=now
            )
            if won == "claimed":
                # The job left the queue: give its place in the band back, in the same transaction.
                Band.objects.release(getattr(request, HEADER_BAND, "") or "")
        if won:
            break
        # A lost claim is not yet a stale copy. The copy may have overtaken its submission's
        # commit (see broker.publish.FirstCopy): then the row is absent, or it was committed between
        # the UPDATE's snapshot and now and is claimable (so look in a new statement, not at
        # the UPDATE's row count alone).
        standing = Job.objects.standing(str(request.id), int(generation))
        missing = standing == "absent"
        if standing == "stale" or (missing and time.monotonic() > deadline):
            break
        if missing:
            time.sleep(CLAIM_POLL_SECONDS)
        # "claimable": claim again at once. It can't repeat for long: the next UPDATE sees the
        # row, and it stays claimable only until some copy wins it.
    if won == "redelivered" and _lost_too_often(task, int(generation), now):
        raise Ignore()
    if won:
        queued_at = getattr(request, HEADER_QUEUED_AT, None)
        logger.info(
            "start task_id=%s task=%s priority=%s requested=%s waited=%.3fs generation=%s redelivered=%s",
            str(request.id),
            task.name,
            getattr(request, HEADER_PRIORITY, None),
            getattr(request, HEADER_REQUESTED, None),
            now.timestamp() - queued_at if queued_at else 0.0,
            generation,
            redelivered,
        )
        return int(generation)
    logger.info(
        "drop %s task_id=%s task=%s priority=%s generation=%s",
        "copy without a ledger row" if missing else "stale copy",
        str(request.id),
        task.name,
        getattr(request, HEADER_PRIORITY, None),
        generation,
    )
    raise Ignore()


def _lost_too_often(task: AnyTask, generation: int, now: datetime) -> bool:
    """After ``QUEUEPRIO_MAX_WORKER_LOSSES`` dead workers, fail the job instead of running it again."""
    request = task.request
    losses = Job.objects.filter(task_id=str(request.id)).values_list("worker_losses", flat=True).first() or 0
    if losses < int(settings.MAX_WORKER_LOSSES):
        return False
    error = f"WorkerLost: the worker running this job died {losses} times; not running it again"
    Job.objects.give_up(str(request.id), generation, error=error, now=now)
    logger.error("give up task_id=%s task=%s worker_losses=%s", str(request.id), task.name, losses)
    task.backend.mark_as_failure(str(request.id), WorkerLostError(error), request=request)
    return True
