"""The one submission path: validate, resolve, admit, record, publish.

Every way of sending a queueprio task ends here: ``Task.apply_async``/``delay``,
``queueprio.enqueue`` and the converters' helpers. Invariants:

* A refused submission raises a :class:`~queueprio.exceptions.Rejected` subclass, stores a
  :class:`~queueprio.models.Rejection` row, and publishes nothing. Celery's own errors (wrong
  arguments, a soft time limit above the hard one, a value the serializer can't encode) are
  raised as plain Celery raises them, before anything is recorded (``jobs.capture``).
* The message is Celery's own (``broker.message``): canvas, stamps, headers and every option
  survive every copy the ledger ever publishes of the job.
* A job with an ``eta``/``countdown`` ahead is recorded ``scheduled`` and published when due
  (``maintenance.due``): no worker holds it in memory, and it takes its band place then.
* A submission returns only once its ledger row is committed and RabbitMQ has confirmed its
  message. Inside a caller's transaction the message is published when that transaction
  commits (``pending``); otherwise it is sent inside the ledger's own short transaction and
  confirmed after the commit (``broker.publish.FirstCopy``), so the broker's write and the
  database's commit overlap. A worker that receives a copy before its row is visible waits for
  the row (``queueprio.worker``); a copy whose row never commits is dropped.
* A publish that fails marks the row ``publish_failed`` and raises
  :class:`~queueprio.exceptions.PublishFailed` to the caller: no ghost jobs, no silent loss.
* A task id sent again (a frozen signature applied twice, the last task of a chain that replaced
  a job) runs the job again under its row when the row is finished (``resend``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import celery
from celery.result import AsyncResult
from django.db import IntegrityError, transaction
from kombu.utils.uuid import uuid

from ..broker import publish
from ..exceptions import QuotaExceeded, UnknownTask
from ..models import Job, JobState, PrioritySource, UrgentQuota
from ..models.querysets import QuotaRow
from ..priority import validate_priority
from ..registry import AnyTask, is_priority_task, prepare_arguments, priority_tasks
from . import admission, dedup, pending, resend, roundtrips
from .jobs import OWN_OPTIONS, admitted_to, capture_with_result, new_job, resolve
from .rejections import record_rejection, refusals_recorded

logger = logging.getLogger("queueprio")


def lookup_task(name: str) -> AnyTask:
    """The registered queueprio task called ``name``, or :class:`UnknownTask` (stored)."""
    task = celery.current_app.tasks.get(name)
    if not is_priority_task(task):
        # Not registered yet, perhaps: autodiscovery runs only when this path misses.
        tasks = priority_tasks()
        task = tasks.get(name)
    if task is None or not is_priority_task(task):
        known = sorted(tasks)
        exc = UnknownTask(f"unknown task {name!r}; known queueprio tasks: {', '.join(known) or 'none'}", name=name)
        record_rejection(exc, task_name=name, priority=None)
        raise exc
    return task


#: Set on the one re-submission after a duplicate key's job expired mid-submission.
_AGAIN = "_queueprio_again"


def submit(
    task: AnyTask,
    args: Any,
    kwargs: Any,
    *,
    task_id: str | None = None,
    producer: Any = None,
    **options: Any,
) -> AsyncResult[Any]:
    """Validate, resolve, admit, record and publish one job. See the module docstring."""
    explicit = options.pop("priority", None)
    first_try = not options.pop(_AGAIN, False)
    caller_key = options.pop("caller_key", None) or ""
    key = options.pop("idempotency_key", None)
    with refusals_recorded(task.name, explicit, caller_key):
        args, kwargs, priority, source = validate(task, args, kwargs, explicit)
        quota = UrgentQuota.objects.current() if caller_key else None
        priority, source = quota_checked(task.name, priority, source, caller_key, quota=quota)
        if key is not None and (joined := dedup.join(task, key, priority, caller_key=caller_key)) is not None:
            return joined
    # Only a task id the caller chose can already have a row (a frozen signature applied twice,
    # a chain's last task): a fresh uuid4 needs no look-up (a round trip on PostgreSQL).
    given = task_id is not None
    task_id = task_id or uuid()
    app = task.app
    in_caller_transaction = transaction.get_connection().in_atomic_block
    retry, retry_policy = options.get("retry"), options.get("retry_policy")
    with publish.FirstCopy(app, producer, retry=retry, retry_policy=retry_policy) as first:
        message, result = capture_with_result(
            task, first.producer, args, kwargs, task_id=task_id, priority=priority, options=options
        )
        job = new_job(task, message, args=args, kwargs=kwargs, priority=priority, source=source)
        job.caller_key, job.idempotency_key = caller_key, key
        if given and Job.objects.filter(task_id=task_id).exists():
            return resend.resend(task, job)
        with refusals_recorded(task.name, explicit, caller_key):
            try:
                if in_caller_transaction:
                    # Inside the caller's transaction: publish once it commits (it may roll back).
                    admit_and_record([job])
                    if job.state == JobState.QUEUED:
                        pending.publish_on_commit(app, [job])
                else:

                    def send_unless_duplicate() -> None:
                        # Checked again under a lock on the key: a racer may have committed it
                        # since the check above, and nothing may be sent for a duplicate.
                        if key is not None and dedup.taken(key):
                            raise dedup.Duplicate(key)
                        if job.state == JobState.QUEUED:
                            first.send(job)

                    admit_and_record(
                        [job],
                        before_admission=quota_recount([job], caller_key, quota),
                        before_insert=send_unless_duplicate,
                    )
                    log_enqueued(job, caller_key)
                    first.confirm()
                    return result
            except (IntegrityError, dedup.Duplicate):
                # Another submitter inserted the same idempotency key (or task id) first: join its job.
                if key is not None and (joined := dedup.join(task, key, priority, caller_key=caller_key)) is not None:
                    return joined
                if Job.objects.filter(task_id=task_id).exists():
                    return resend.resend(task, job)
                if key is not None and first_try and Job.objects.active_with_key(key) is None:
                    # The key's job expired in between and join ended it: submit again, once.
                    again = {"priority": explicit, "caller_key": caller_key or None, "idempotency_key": key}
                    return submit(
                        task,
                        args,
                        kwargs,
                        task_id=task_id if given else None,
                        producer=producer,
                        **options,
                        **again,
                        **{_AGAIN: True},
                    )
                raise
    log_enqueued(job, caller_key)
    return result


def celery_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without queueprio's own (for paths that hand the call to plain Celery)."""
    return {name: value for name, value in options.items() if name not in OWN_OPTIONS}


def quota_recount(jobs: list[Job], caller_key: str, quota: QuotaRow | None) -> Callable[[], None]:
    """A ``before_admission`` hook: count the caller's urgent quota again, for all of ``jobs``.

    The first check (``quota_checked``, before the transaction) lets racing submissions of one
    caller all pass; counting again in the transaction that inserts the rows, one caller at a
    time, makes the limit exact. Only for our own short transaction: held until a caller's
    transaction ends, the lock on the caller could deadlock against that transaction's band
    row locks. A recount that demotes changes the jobs' priority before their admission.
    """

    def recount() -> None:
        first = jobs[0]
        if first.priority_source == PrioritySource.DEMOTED or not admission.counted(quota, first.requested_priority):
            return
        allowed, source = quota_checked(
            first.task_name,
            first.requested_priority,
            first.priority_source,
            caller_key,
            len(jobs),
            serialised=True,
            quota=quota,
        )
        if source == PrioritySource.DEMOTED:
            for job in jobs:
                job.requested_priority = job.effective_priority = allowed
                job.priority_source = source

    return recount


def log_enqueued(job: Job, caller_key: str) -> None:
    logger.info(
        "enqueue task_id=%s task=%s priority=%s source=%s band=%s state=%s caller=%s",
        job.task_id,
        job.task_name,
        job.effective_priority,
        job.priority_source,
        job.band_name,
        job.state,
        caller_key,
    )


def validate(task: AnyTask, args: Any, kwargs: Any, explicit: Any) -> tuple[list[Any], dict[str, Any], int, str]:
    """Refuse bad priorities and arguments; resolve the priority the job gets."""
    if explicit is not None:
        validate_priority(explicit)
    args, kwargs = prepare_arguments(task, list(args or ()), dict(kwargs or {}))
    # Celery's own argument check (``Task.typing``), as apply_async makes it, but first: a call
    # Celery refuses with a TypeError must not join or raise a job by its idempotency key.
    header = getattr(task, "__header__", None) if getattr(task, "typing", False) else None
    if header is not None:
        header(*args, **kwargs)
    priority, source = resolve(task, explicit)
    return args, kwargs, priority, source


def quota_checked(
    task_name: str,
    priority: int,
    source: str,
    caller_key: str,
    count: int = 1,
    *,
    serialised: bool = False,
    quota: QuotaRow | None = None,
) -> tuple[int, str]:
    """Apply the urgent quota; a demotion is recorded like a refusal (it is one, of the priority)."""
    allowed, note = admission.apply_quota(priority, caller_key, count, serialised=serialised, quota=quota)
    if note is None:
        return priority, source
    record_rejection(
        QuotaExceeded(note),
        task_name=task_name,
        priority=priority,
        caller_key=caller_key,
        band=getattr(admission.band_for(priority), "name", ""),
    )
    return allowed, PrioritySource.DEMOTED


def admit_and_record(
    jobs: list[Job],
    *,
    admitted: admission.Admission | None = None,
    before_admission: Callable[[], None] | None = None,
    before_insert: Callable[[], None] | None = None,
) -> None:
    """Take the jobs' places in their band (unless already ``admitted``) and insert their rows, atomically.

    A ``scheduled`` job takes no place until it is due; it only learns its band's time limits.
    ``before_admission`` runs first inside the transaction (a single submission counts its
    caller's quota there); ``before_insert`` once the jobs know their band (a single submission
    publishes there: see ``broker.publish.FirstCopy``).
    """
    if not jobs:
        return
    # PostgreSQL: a single submission in our own transaction takes two round trips (roundtrips).
    one_trip = len(jobs) == 1 and roundtrips.available()
    with roundtrips.one_trip_each() if one_trip else transaction.atomic():
        if before_admission is not None:
            before_admission()
        if admitted is None:
            if jobs[0].state == JobState.SCHEDULED:
                admitted = admission.Admission.of(admission.band_for(jobs[0].requested_priority))
            else:
                admitted, _ = admission.admit(jobs[0].requested_priority, len(jobs))
        for index, job in enumerate(jobs):
            admitted_to(job, admitted)
            if admitted.publishable is not None and index >= admitted.publishable and job.state == JobState.QUEUED:
                # Its band is at its running limit: it waits in the ledger, published as slots free.
                job.state, job.published_at = JobState.HELD, None
        if before_insert is not None:
            before_insert()
        if one_trip:
            roundtrips.insert_committing(jobs[0])
        elif len(jobs) == 1:
            jobs[0].save(force_insert=True)
        else:
            Job.objects.bulk_create(jobs)
