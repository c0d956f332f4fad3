"""The claim: does this copy of a job run? One conditional UPDATE; the invariants are in ``queueprio.worker``."""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta
from typing import NoReturn

from billiard.exceptions import WorkerLostError
from celery.exceptions import Ignore
from django.db import transaction
from django.utils import timezone

from ..broker.protocol import HEADER_GENERATION, HEADER_PRIORITY, HEADER_QUEUED_AT, HEADER_REQUESTED, HEADER_TOKEN
from ..conf import settings
from ..exceptions import lost_too_often
from ..models import Band, Job, JobState
from ..registry import AnyTask
from .external import adopt_external
from .results import ignores_result, is_ledger_backend, store_started

logger = logging.getLogger("queueprio")

#: How long a copy that arrived before its row was committed waits before it looks again: first
#: briefly (the submission's COMMIT is usually a millisecond behind its publish, and on an idle
#: worker every single submission's copy arrives that early), then doubling up to the last.
CLAIM_POLL_SECONDS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.02)


class AtItsLimit(Exception):
    """Raised inside the claim's transaction to roll it back: the band has no free running slot."""


def tracks_started_here(task: AnyTask) -> bool:
    """Is Celery's STARTED written by the claim (the ledger's result backend, ``track_started`` on)?"""
    return bool(task.app.conf.task_track_started) and is_ledger_backend(task) and not ignores_result(task)


def lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=float(settings.LEASE_SECONDS))


def claim(task: AnyTask) -> int:
    """Claim the job for this copy and return its generation, or raise ``Ignore`` to drop the copy."""
    request = task.request
    generation = getattr(request, HEADER_GENERATION, None)
    task_id = str(request.id)
    if generation is None:
        return adopt_external(task)
    generation, token = int(generation), str(getattr(request, HEADER_TOKEN, "") or "")
    worker = request.hostname or ""
    deadline = time.monotonic() + float(settings.CLAIM_WAIT_SECONDS)
    polls = 0
    while True:
        now = timezone.now()
        try:
            with transaction.atomic():
                until = lease_until(now)
                won = Job.objects.claim(task_id, generation, token, worker=worker, now=now, lease_until=until)
                if won is not None:
                    # The job's waiting place becomes a running slot (the band's max_running allowing),
                    # in the same transaction; so is Celery's STARTED when the result backend is the ledger's.
                    if not Band.objects.start(won.band_id):
                        raise AtItsLimit(won.band_id)
                    if tracks_started_here(task):
                        store_started(task, {"pid": os.getpid(), "hostname": task.request.hostname})
        except AtItsLimit:  # rolled back: the job is still queued
            if Job.objects.hold(task_id, generation):
                drop(task, "its band is at its running limit: held", generation)
            continue  # the row moved meanwhile: look again
        if won is not None:
            return started(task, generation, redelivered=False, now=now)
        # A lost claim is not yet a stale copy. The copy may have overtaken its submission's
        # commit (see broker.publish.FirstCopy): then the row is absent, or it was committed
        # between the UPDATE's snapshot and now and is claimable (so look in a new statement).
        standing = Job.objects.standing(task_id, generation, token, now)
        if standing == "claimable":
            continue  # the next UPDATE sees the row; it stays claimable only until a copy wins it
        if standing == "absent" and time.monotonic() < deadline:
            time.sleep(CLAIM_POLL_SECONDS[min(polls, len(CLAIM_POLL_SECONDS) - 1)])
            polls += 1
            continue
        break
    if standing == "held":
        return _take_over(task, generation, token, now)
    if standing == "expired":
        expire(task_id, now)
    drop(task, standing, generation)


def _take_over(task: AnyTask, generation: int, token: str, now: datetime) -> int:
    """A copy of the generation that holds the job: run it again only if its run is gone.

    RabbitMQ redelivers an unacked message when the worker's connection drops, not only when
    its process dies; the first run may still be alive. Its lease says: a run renews it while
    it lives (``worker.lease``), and the worker that saw the process die ends it
    (``worker.request``). While it is current, this copy is dropped, and no worker loss counted.
    """
    task_id = str(task.request.id)
    if not Job.objects.take_over(
        task_id, generation, token, worker=task.request.hostname or "", now=now, lease_until=lease_until(now)
    ):
        drop(task, "held by a live run", generation)
    if _lost_too_often(task, generation, now):
        raise Ignore()
    return started(task, generation, redelivered=True, now=now)


def started(task: AnyTask, generation: int, *, redelivered: bool, now: datetime) -> int:
    request = task.request
    queued_at = getattr(request, HEADER_QUEUED_AT, None)
    logger.info(
        "start task_id=%s task=%s priority=%s requested=%s waited=%.3fs generation=%s redelivered=%s",
        request.id,
        task.name,
        getattr(request, HEADER_PRIORITY, None),
        getattr(request, HEADER_REQUESTED, None),
        now.timestamp() - queued_at if queued_at else 0.0,
        generation,
        redelivered,
    )
    return generation


def drop(task: AnyTask, why: str, generation: int) -> NoReturn:
    """Acknowledge this copy without running it (``Ignore``: no result stored, the caller's untouched)."""
    request = task.request
    logger.info(
        "drop %s task_id=%s task=%s priority=%s generation=%s",
        "copy without a ledger row" if why == "absent" else f"copy ({why})",
        request.id,
        task.name,
        getattr(request, HEADER_PRIORITY, None),
        generation,
    )
    raise Ignore()


def expire(task_id: str, now: datetime) -> None:
    """A copy found its job expired before it ran: the job ends ``expired``, its band place given back."""
    if Job.objects.end_waiting(task_id, JobState.EXPIRED, error="expired before it ran", now=now):
        logger.info("expire task_id=%s", task_id)


def _lost_too_often(task: AnyTask, generation: int, now: datetime) -> bool:
    """After ``QUEUEPRIO_MAX_WORKER_LOSSES`` dead runs, fail the job instead of running it again."""
    request = task.request
    task_id = str(request.id)
    losses = Job.objects.filter(task_id=task_id).values_list("worker_losses", flat=True).first() or 0
    if losses < int(settings.MAX_WORKER_LOSSES):
        return False
    error = lost_too_often(losses)
    Job.objects.give_up(task_id, generation, error=error, now=now)
    logger.error("give up task_id=%s task=%s worker_losses=%s", task_id, task.name, losses)
    task.backend.mark_as_failure(task_id, WorkerLostError(error), request=request)
    return True
