"""Running the claimed copy: the task body between the claim and the ledger's record of how it ended."""

from __future__ import annotations

import logging
import os
import time
import traceback
from typing import Any

import celery
from celery import states
from celery.app.trace import get_actual_ignore_result  # type: ignore[attr-defined]  # not in celery-types
from celery.exceptions import Ignore, Reject, Retry, SoftTimeLimitExceeded
from django.utils import timezone

from ..broker.protocol import HEADER_BAND, HEADER_PRIORITY
from ..models import Job, JobState
from ..registry import AnyTask
from .claim import claim

logger = logging.getLogger("queueprio")


def run_claimed(task: AnyTask, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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


def mark_started(task: AnyTask) -> None:
    """Celery's ``task_track_started``, for the copy that won the claim only (invariant 7)."""
    request = task.request
    if not task.app.conf.task_track_started or get_actual_ignore_result(task, request):
        return
    task.backend.store_result(
        str(request.id), {"pid": os.getpid(), "hostname": request.hostname}, states.STARTED, request=request
    )


def fail_after_hard_time_limit(task_id: str, task_name: str, exc: BaseException) -> None:
    """Celery killed the process at the hard time limit; record it (runs in the worker's main process)."""
    updated = Job.objects.filter(task_id=task_id, state=JobState.STARTED).update(
        state=JobState.FAILED, finished_at=timezone.now(), error=f"TimeLimitExceeded: {exc}"
    )
    if updated:
        logger.info("finish task_id=%s task=%s state=failed error=TimeLimitExceeded", task_id, task_name)


def finish(task: AnyTask, generation: int, state: str, *, started: float, error: str = "") -> None:
    request = task.request
    now = timezone.now()
    Job.objects.finish(str(request.id), generation, state=state, error=error, now=now)
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
