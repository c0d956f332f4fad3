"""Running the claimed copy: the task body between the claim and the ledger's record of how it ended."""

from __future__ import annotations

import logging
import os
import time
import traceback
from typing import Any

import celery
from celery import states
from celery.exceptions import Ignore, Reject, Retry, SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from ..broker.protocol import HEADER_PRIORITY
from ..models import Job, JobState
from ..registry import AnyTask
from .claim import claim, lease_until, tracks_started_here
from .database import retrying
from .followup import ended_without_result, hand_on, pending_followup, requeue
from .lease import leases
from .progress import GENERATION
from .results import defer_finish, ignores_result

logger = logging.getLogger("queueprio")


def run_claimed(task: AnyTask, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run the task body if this copy holds the claim, and record how the run ended."""
    request = task.request
    if request.called_directly or request.is_eager:
        return celery.Task.__call__(task, *args, **kwargs)
    generation = retrying(lambda: claim(task), what="claim")  # a database restart: wait (worker.database)
    setattr(request, GENERATION, generation)  # the run's own progress reports name it
    task_id = str(request.id)
    leases.hold(task_id, generation, lease_until(timezone.now()))
    try:
        return _run(task, generation, args, kwargs)
    finally:
        leases.release(task_id)


def _run(task: AnyTask, generation: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    mark_started(task)
    started = time.monotonic()
    try:
        # The body itself, under the request the worker pushed: what Celery's worker does for a
        # task class whose __call__ it doesn't override. (Celery's own Task.__call__ would push a
        # second request when the worker's optimisations are off, as in celery.contrib.testing's
        # in-process worker, and whatever the body set on its request, a retry, would be lost.)
        result = task.run(*args, **kwargs)
    except Retry:
        _hand_on_or_fail(task, generation, started, "retry() sent nothing")
        raise
    except Ignore:
        followup = pending_followup(task)
        if followup is not None:
            hand_on(task, generation, followup)
        else:
            finish(task, generation, ended_without_result(task), started=started)
        raise
    except Reject as exc:
        if getattr(exc, "requeue", False):
            requeue(task, generation)
        else:
            reason = getattr(exc, "reason", None)
            finish(task, generation, JobState.REJECTED, started=started, error=f"Reject: {reason!r}")
        raise
    except SoftTimeLimitExceeded as exc:
        limit = (task.request.timelimit or (None, None))[1]
        band = Job.objects.filter(task_id=str(task.request.id)).values_list("band_name", flat=True).first() or "-"
        error = f"SoftTimeLimitExceeded: soft time limit of {limit}s exceeded (band {band})\n\n" + describe(exc)
        finish(task, generation, JobState.FAILED, started=started, error=error, stored=True)
        raise
    except BaseException as exc:
        followup = pending_followup(task)
        if followup is not None:  # retry(throw=False) sent the job again before the body failed
            hand_on(task, generation, followup)
        else:
            finish(task, generation, JobState.FAILED, started=started, error=describe(exc), stored=True)
        raise
    followup = pending_followup(task)
    if followup is not None:  # retry(throw=False): the body returned, and the job runs again
        hand_on(task, generation, followup)
    else:
        finish(task, generation, JobState.SUCCEEDED, started=started, stored=True)
    return result


def _hand_on_or_fail(task: AnyTask, generation: int, started: float, why: str) -> None:
    followup = pending_followup(task)
    if followup is not None:
        hand_on(task, generation, followup)
    else:  # a Retry raised by hand, not by retry(): Celery marks it RETRY and sends nothing
        finish(task, generation, JobState.FAILED, started=started, error=f"Retry raised but {why}")


def mark_started(task: AnyTask) -> None:
    """Celery's ``task_track_started``, for the copy that won the claim only (invariant 7)."""
    request = task.request
    if not task.app.conf.task_track_started or ignores_result(task) or tracks_started_here(task):
        return  # (with the ledger's result backend the claim wrote it already)
    task.backend.store_result(
        str(request.id), {"pid": os.getpid(), "hostname": request.hostname}, states.STARTED, request=request
    )


def fail_after_hard_time_limit(task_id: str, task_name: str, exc: BaseException) -> None:
    """Celery killed the process at the hard time limit; record it (runs in the worker's main process)."""
    with transaction.atomic():
        updated = Job.objects.end_running(
            task_id, JobState.FAILED, error=f"TimeLimitExceeded: {exc}", now=timezone.now()
        )
    if updated:
        logger.info("finish task_id=%s task=%s state=failed error=TimeLimitExceeded", task_id, task_name)


def finish(
    task: AnyTask, generation: int, state: str, *, started: float, error: str = "", stored: bool = False
) -> None:
    """Record how the run ended. ``stored``: Celery stores a result for it next; with the ledger's
    result backend the row is then finished in that same transaction (``worker.results``)."""
    request = task.request
    if not (stored and defer_finish(task, generation, state, error[:10_000])):

        def write() -> None:
            with transaction.atomic():  # the row and its band's running slot together
                Job.objects.finish(str(request.id), generation, state=state, error=error, now=timezone.now())

        retrying(write, what="finish")  # a database restart: wait (worker.database)
    logger.info(
        "finish task_id=%s task=%s priority=%s state=%s runtime=%.3fs retries=%s%s",
        str(request.id),
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
