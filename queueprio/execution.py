"""Worker side: which copy of a job may run, and recording how it ended.

A job can have several messages in the broker at once: aging, an admin's "set priority",
a raised duplicate or a recovery each publish a new copy under the same task id, and
leave the older copies where they are (AMQP can't take a message back). Each copy carries
its generation in the ``qp_generation`` header; the ledger row holds the newest generation.

Invariants, enforced by one conditional UPDATE per received copy (``JobQuerySet.claim``):

1. A copy runs only if it wins the claim: the row is ``queued`` and the copy's generation
   is at least the row's (a republished copy can arrive before the row records its new
   generation, because the row is updated only once the broker confirmed the publish).
   Winning moves the row to ``started`` and records the generation as
   ``claimed_generation`` in the same statement, so at most one copy can ever win.
2. The winning copy may run again only when the broker redelivers *that* copy
   (``redelivered`` flag, after its worker died before acking; acks are late). A redelivered
   copy of another generation is stale.
3. Every other copy is stale: it is acknowledged and dropped without running
   (``celery.exceptions.Ignore``: no result is stored, the caller's result is untouched).
4. Only the claiming copy records the outcome (``JobQuerySet.finish`` matches
   ``claimed_generation``); a retry publishes a new generation and sets the row back to
   ``queued`` before the current run returns.
5. A job whose claiming copy keeps killing its worker (a poison message: a segfault, the OOM
   killer) is failed after ``QUEUEPRIO_MAX_WORKER_LOSSES`` redeliveries instead of looping
   forever; a job killed at its hard time limit is failed by ``PriorityTask.on_failure``.
6. A copy can arrive before its row is committed: a single submission sends it inside the
   ledger transaction and commits while the broker stores it (``publish.FirstCopy``). A
   copy that finds no row at all claims again until the row appears, for at most
   ``QUEUEPRIO_CLAIM_WAIT_SECONDS``; a copy whose row never appears (its submission rolled
   back, and its caller got the error) is dropped like a stale one. A lost claim is judged
   stale only from a fresh read of the row (``JobQuerySet.standing``): the row can be
   committed between the claim's ``UPDATE`` and that read, and is then claimed again.
7. A message published without queueprio (an old client's ``send_task``) has no generation:
   it runs, and gets a ledger row when it starts.
8. Only the claiming copy touches the result backend. Celery's own ``task_track_started``
   writes ``STARTED`` *before* the task body (and so before the claim) runs: a stale copy, or
   the claiming copy redelivered after its job finished (its ack lost with a broker
   connection), would overwrite the job's stored ``SUCCESS`` with ``STARTED`` for good. So
   ``PriorityTask`` turns Celery's tracking off and :func:`mark_started` does it after the claim.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from datetime import datetime
from typing import TYPE_CHECKING, Any

import celery
from billiard.exceptions import WorkerLostError
from celery import states
from celery.app.trace import get_actual_ignore_result
from celery.exceptions import Ignore, Reject, Retry, SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from .admission import release
from .conf import settings
from .models import Job, JobState, PrioritySource
from .routing import HEADER_BAND, HEADER_GENERATION, HEADER_PRIORITY, HEADER_QUEUED_AT, HEADER_REQUESTED

if TYPE_CHECKING:
    from .tasks import PriorityTask

logger = logging.getLogger("queueprio")

#: Generation recorded for a message that came without one (published outside queueprio).
EXTERNAL_GENERATION = 0
#: How often a copy that arrived before its row was committed looks for the row again.
CLAIM_POLL_SECONDS = 0.02


def run_claimed(task: PriorityTask, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run the task body if this copy holds the claim, and record the outcome."""
    request = task.request
    if request.called_directly or request.is_eager:
        return celery.Task.__call__(task, *args, **kwargs)
    generation = claim(task)
    mark_started(task)
    started = time.monotonic()
    try:
        result = celery.Task.__call__(task, *args, **kwargs)
    except (Retry, Ignore, Reject):
        raise  # a retry already re-queued the row; the others are Celery's control flow
    except SoftTimeLimitExceeded as exc:
        limit = (request.timelimit or (None, None))[1]
        band = getattr(request, HEADER_BAND, "") or "-"
        finish(
            task,
            generation,
            JobState.FAILED,
            started=started,
            error=f"SoftTimeLimitExceeded: soft time limit of {limit}s exceeded (band {band})\n\n" + describe(exc),
        )
        raise
    except BaseException as exc:
        finish(task, generation, JobState.FAILED, started=started, error=describe(exc))
        raise
    finish(task, generation, JobState.SUCCEEDED, started=started)
    return result


def claim(task: PriorityTask) -> int:
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
                request.id, generation, redelivered=redelivered, worker=request.hostname or "", now=now
            )
            if won == "claimed":
                # The job left the queue: give its place in the band back, in the same transaction.
                release(getattr(request, HEADER_BAND, "") or "")
        if won:
            break
        # A lost claim is not yet a stale copy. The copy may have overtaken its submission's
        # commit (see publish.FirstCopy): then the row is absent, or it was committed between
        # the UPDATE's snapshot and now and is claimable (so look in a new statement, not at
        # the UPDATE's row count alone).
        standing = Job.objects.standing(request.id, int(generation))
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
            request.id,
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
        request.id,
        task.name,
        getattr(request, HEADER_PRIORITY, None),
        generation,
    )
    raise Ignore()


def _lost_too_often(task: PriorityTask, generation: int, now: datetime) -> bool:
    """After ``QUEUEPRIO_MAX_WORKER_LOSSES`` dead workers, fail the job instead of running it again."""
    request = task.request
    losses = Job.objects.filter(task_id=request.id).values_list("worker_losses", flat=True).first() or 0
    if losses < int(settings.MAX_WORKER_LOSSES):
        return False
    error = f"WorkerLost: the worker running this job died {losses} times; not running it again"
    Job.objects.give_up(request.id, generation, error=error, now=now)
    logger.error("give up task_id=%s task=%s worker_losses=%s", request.id, task.name, losses)
    task.backend.mark_as_failure(request.id, WorkerLostError(error), request=request)
    return True


def mark_started(task: PriorityTask) -> None:
    """Celery's ``task_track_started``, for the copy that won the claim only (invariant 7)."""
    request = task.request
    if not task.app.conf.task_track_started or get_actual_ignore_result(task, request):
        return
    task.backend.store_result(
        request.id, {"pid": os.getpid(), "hostname": request.hostname}, states.STARTED, request=request
    )


def adopt_external(task: PriorityTask) -> int:
    """Give a message published outside queueprio a ledger row, at the default priority."""
    from .submit import resolve

    request = task.request
    priority, _ = resolve(task, None)
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


def fail_after_hard_time_limit(task_id: str, task_name: str, exc: BaseException) -> None:
    """Celery killed the process at the hard time limit; record it (runs in the worker's main process)."""
    updated = Job.objects.filter(task_id=task_id, state=JobState.STARTED).update(
        state=JobState.FAILED, finished_at=timezone.now(), error=f"TimeLimitExceeded: {exc}"
    )
    if updated:
        logger.info("finish task_id=%s task=%s state=failed error=TimeLimitExceeded", task_id, task_name)


def finish(task: PriorityTask, generation: int, state: str, *, started: float, error: str = "") -> None:
    request = task.request
    now = timezone.now()
    Job.objects.finish(request.id, generation, state=state, error=error, now=now)
    logger.info(
        "finish task_id=%s task=%s priority=%s state=%s runtime=%.3fs retries=%s%s",
        request.id,
        task.name,
        getattr(request, HEADER_PRIORITY, None),
        state,
        time.monotonic() - started,
        request.retries,
        f" error={error.splitlines()[0]!r}" if error else "",
    )


def describe(exc: BaseException) -> str:
    """A readable one-line cause first, then the traceback for whoever needs it."""
    head = f"{type(exc).__name__}: {exc}"
    return head + "\n\n" + "".join(traceback.format_exception(exc))[-8_000:]
