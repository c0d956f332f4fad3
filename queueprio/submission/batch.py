"""Submit many jobs of one task: one ledger round trip, one producer connection."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from celery.result import AsyncResult
from django.db import transaction
from django.utils import timezone
from kombu.utils.uuid import uuid

from ..broker import pipeline
from ..exceptions import PublishFailed, QueueFull, Rejected
from ..models import Band, Job, JobState, Rejection, UrgentQuota
from ..priority import validate_priority
from ..registry import AnyTask, prepare_arguments
from . import admission, pending
from .jobs import capture, new_job, resolve
from .rejections import refusals_recorded
from .submit import admit_and_record, quota_checked, quota_recount

logger = logging.getLogger("queueprio")

Call = tuple[Sequence[Any], dict[str, Any]]


@dataclass
class BatchResult:
    """The accepted jobs' results, in submission order, and the refused calls by index."""

    results: list[AsyncResult[Any]] = field(default_factory=list)
    rejected: list[tuple[int, Rejected]] = field(default_factory=list)

    def __iter__(self) -> Iterator[AsyncResult[Any]]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.results]


def submit_batch(
    task: AnyTask, calls: Sequence[Call], *, priority: int | None = None, partial: bool = False, **options: Any
) -> BatchResult:
    """Validate every call, then admit, record all rows at once and publish them on one producer.

    Over a band's limit the batch is all-or-nothing by default: :class:`QueueFull` is raised and
    nothing is recorded or published. With ``partial=True`` the first calls that fit are admitted
    and the rest come back in ``BatchResult.rejected`` (each refusal stored). Any invalid call
    refuses the whole batch. ``idempotency_key`` is not supported for batches.
    """
    caller_key = options.pop("caller_key", None) or ""
    if options.pop("idempotency_key", None) is not None:
        raise TypeError("idempotency_key is per job: submit jobs with a key one by one")
    with refusals_recorded(task.name, priority, caller_key):
        if priority is not None:
            validate_priority(priority)
        prepared = _prepare_all(task, calls)
        resolved, source = resolve(task, priority)
        quota = UrgentQuota.objects.current() if caller_key else None
        resolved, source = quota_checked(task.name, resolved, source, caller_key, len(prepared), quota=quota)
        jobs = _new_jobs(task, prepared, priority=resolved, source=source, options=options)
        for job in jobs:
            job.caller_key = caller_key
        # Counted again under a lock on the caller, as for a single submission (not inside a
        # caller's own transaction: see quota_recount).
        own_transaction = jobs and not transaction.get_connection().in_atomic_block
        recount = quota_recount(jobs, caller_key, quota) if own_transaction else None
        fits = _admit_fitting(jobs, partial=partial, before_admission=recount)
        if jobs:
            resolved, source = jobs[0].effective_priority, jobs[0].priority_source  # a recount may demote
    rejected = _reject_rest(task, jobs[fits:], resolved, caller_key, offset=fits)
    jobs = jobs[:fits]
    logger.info(
        "enqueue batch task=%s priority=%s source=%s jobs=%s rejected=%s caller=%s",
        task.name,
        resolved,
        source,
        len(jobs),
        len(rejected),
        caller_key,
    )
    queued = [job for job in jobs if job.state == JobState.QUEUED]
    if transaction.get_connection().in_atomic_block:
        pending.publish_on_commit(task.app, queued)
    else:
        publish_many(task, queued)
    return BatchResult(results=[task.AsyncResult(job.task_id) for job in jobs], rejected=rejected)


def _prepare_all(task: AnyTask, calls: Sequence[Call]) -> list[tuple[list[Any], dict[str, Any]]]:
    """``prepare_arguments`` for every call, once per distinct call (a batch often repeats sources)."""
    seen: dict[str, tuple[list[Any], dict[str, Any]]] = {}
    prepared = []
    for args, kwargs in calls:
        key = json.dumps([args, kwargs], sort_keys=True, default=str)
        if key not in seen:
            seen[key] = prepare_arguments(task, list(args or ()), dict(kwargs or {}))
        args_out, kwargs_out = seen[key]
        prepared.append((list(args_out), dict(kwargs_out)))
    return prepared


def _new_jobs(
    task: AnyTask,
    prepared: list[tuple[list[Any], dict[str, Any]]],
    *,
    priority: int,
    source: str,
    options: dict[str, Any],
) -> list[Job]:
    """A row and its Celery message for every call (the messages built on one producer)."""
    with task.app.producer_or_acquire(None) as producer:
        return [
            new_job(
                task,
                capture(task, producer, args, kwargs, task_id=uuid(), priority=priority, options=dict(options)),
                args=args,
                kwargs=kwargs,
                priority=priority,
                source=source,
            )
            for args, kwargs in prepared
        ]


def _admit_fitting(jobs: list[Job], *, partial: bool, before_admission: Callable[[], None] | None = None) -> int:
    """Admit and record as many jobs as the band takes (all, or raise, unless ``partial``)."""
    if not partial or (jobs and jobs[0].state == JobState.SCHEDULED):
        admit_and_record(jobs, before_admission=before_admission)
        return len(jobs)
    with transaction.atomic():
        if before_admission is not None:
            before_admission()
        admitted, fits = admission.admit(jobs[0].requested_priority, len(jobs), partial=True)
        admit_and_record(jobs[:fits], admitted=admitted)
    return fits


def _reject_rest(
    task: AnyTask, jobs: list[Job], priority: int, caller_key: str, *, offset: int
) -> list[tuple[int, Rejected]]:
    if not jobs:
        return []
    band = admission.band_for(priority)
    exc = QueueFull(f"band {band.name if band else ''!r} is full", band=band.name if band else "")
    now = timezone.now()
    Rejection.objects.bulk_create(
        Rejection(
            at=now,
            task_name=task.name,
            requested_priority=str(priority),
            band=exc.detail["band"],
            reason=exc.reason,
            detail=f"{exc} (batch, job {job.task_id} not admitted)",
            caller_key=caller_key,
        )
        for job in jobs
    )
    return [(offset + i, exc) for i in range(len(jobs))]


def publish_many(task: AnyTask, jobs: list[Job]) -> None:
    """Publish each job's first copy on one connection, confirmed as a whole at the end.

    Jobs whose messages were not confirmed, or were returned as unroutable (every copy is
    published ``mandatory``), are marked ``publish_failed`` (and their band places released)
    and ``PublishFailed`` is raised. Marking one whose message did arrive is safe: a
    worker's claim needs the row to be ``queued``, so that copy would be dropped unrun.
    """
    if not jobs:
        return
    confirmed, error = pipeline.send_confirmed(task.app, jobs)
    failed = [job for job, ok in zip(jobs, confirmed, strict=True) if not ok]
    if failed:
        _mark_failed(task, failed, error or TimeoutError("the broker did not confirm every message"))


def _mark_failed(task: AnyTask, failed: list[Job], error: BaseException) -> None:
    logger.error("publish failed task=%s failed=%s error=%s", task.name, len(failed), error)
    with transaction.atomic():  # the rows and their band's counter change together
        marked = Job.objects.filter(task_id__in=[job.task_id for job in failed], state=JobState.QUEUED).update(
            state=JobState.PUBLISH_FAILED,
            error=f"publish failed: {error}",
            finished_at=timezone.now(),
            next_aging_at=None,
        )
        Band.objects.release(failed[0].band_id, marked)
    raise PublishFailed(failed[0].task_id, error) from error
