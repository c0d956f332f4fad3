"""The one submission path: validate, resolve, admit, record, publish.

Every way of sending a queueprio task ends here: ``Task.apply_async``/``delay``,
``queueprio.enqueue`` and the converters' helpers. Invariants:

* A refused submission raises a :class:`~queueprio.exceptions.Rejected` subclass, stores a
  :class:`~queueprio.models.Rejection` row, and publishes nothing.
* A submission returns only once its ledger row is committed and RabbitMQ has confirmed its
  message. Inside a caller's transaction the message is published when that transaction
  commits (``on_commit``); otherwise it is sent inside the ledger's own short transaction and
  confirmed after the commit (``publish.FirstCopy``), so the broker's write and the database's
  commit overlap. A worker that receives a copy before its row is visible waits for the row
  (``queueprio.execution``); a copy whose row never commits is dropped.
* A publish that fails marks the row ``publish_failed`` and raises
  :class:`~queueprio.exceptions.PublishFailed` to the caller: no ghost jobs, no silent loss.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import celery
from celery.result import AsyncResult
from django.db import IntegrityError, transaction
from django.utils import timezone
from kombu.utils.uuid import uuid

from . import admission, dedup, publish
from .conf import settings
from .exceptions import QuotaExceeded, Rejected, UnknownTask
from .models import Job, JobState, PrioritySource, Rejection, TaskPriority, UrgentQuota
from .priority import resolve_priority, validate_priority
from .querysets import QuotaRow

if TYPE_CHECKING:
    from .tasks import PriorityTask

logger = logging.getLogger("queueprio")

#: apply_async options that are ours, not Celery's.
OWN_OPTIONS = ("caller_key", "idempotency_key")


def enqueue(
    task: PriorityTask | str,
    args: Any = (),
    kwargs: dict[str, Any] | None = None,
    *,
    priority: int | None = None,
    **options: Any,
) -> AsyncResult:
    """Submit ``task`` (a PriorityTask or its registered name) at ``priority`` (1 = most urgent)."""
    if isinstance(task, str):
        task = lookup_task(task)
    return task.apply_async(args, kwargs, priority=priority, **options)


def lookup_task(name: str) -> PriorityTask:
    """The registered queueprio task called ``name``, or :class:`UnknownTask` (stored)."""
    from .registry import priority_tasks
    from .tasks import PriorityTask

    task = celery.current_app.tasks.get(name)
    if not isinstance(task, PriorityTask):
        # Not registered yet, perhaps: autodiscovery runs only when this path misses.
        tasks = priority_tasks()
        task = tasks.get(name)
    if not isinstance(task, PriorityTask):
        known = sorted(tasks)
        exc = UnknownTask(f"unknown task {name!r}; known queueprio tasks: {', '.join(known) or 'none'}", name=name)
        record_rejection(exc, task_name=name, priority=None)
        raise exc
    return task


def resolve(task: PriorityTask, explicit: int | None) -> tuple[int, str]:
    """The priority ``task`` runs at and where it came from (see ``resolve_priority``)."""
    if explicit is not None:  # nothing below could change it: skip the admin default's query
        return validate_priority(explicit), PrioritySource.CALL
    code_default = task.queueprio_priority
    admin_default = TaskPriority.objects.admin_default(task.name, code_default=code_default)
    priority = resolve_priority(
        explicit, admin_default=admin_default, code_default=code_default, global_default=settings.DEFAULT_PRIORITY
    )
    if explicit is not None:
        return priority, PrioritySource.CALL
    if admin_default is not None:
        return priority, PrioritySource.ADMIN
    if code_default is not None:
        return priority, PrioritySource.CODE
    return priority, PrioritySource.GLOBAL


def submit(
    task: PriorityTask,
    args: Any,
    kwargs: Any,
    *,
    task_id: str | None = None,
    producer: Any = None,
    **options: Any,
) -> AsyncResult:
    """Validate, resolve, admit, record and publish one job. See the module docstring."""
    explicit = options.pop("priority", None)
    caller_key = options.pop("caller_key", None) or ""
    key = options.pop("idempotency_key", None)
    with refusals_recorded(task.name, explicit, caller_key):
        args, kwargs, priority, source = validate(task, args, kwargs, explicit)
        quota = UrgentQuota.objects.current() if caller_key else None
        priority, source = quota_checked(task.name, priority, source, caller_key, quota=quota)
        if key is not None and (joined := dedup.join(task, key, priority)) is not None:
            return joined
        job = new_job(task, args, kwargs, task_id=task_id or uuid(), priority=priority, source=source, options=options)
        job.caller_key, job.idempotency_key = caller_key, key

        try:
            if transaction.get_connection().in_atomic_block:
                # Inside the caller's transaction: publish once it commits (it may roll back).
                admit_and_record([job], options)
                transaction.on_commit(lambda: publish.publish(task, job, producer=producer, options=options))
            else:
                with publish.FirstCopy(task, job, producer, options) as first:

                    def send_unless_duplicate() -> None:
                        # Checked again under a lock on the key: a racer may have committed it
                        # since the check above, and nothing may be sent for a duplicate.
                        if key is not None and dedup.taken(key):
                            raise dedup.Duplicate(key)
                        # A task id the caller chose may be taken: the insert would fail after
                        # the send, and the copy could claim the other job's row.
                        if task_id is not None and Job.objects.filter(task_id=task_id).exists():
                            raise IntegrityError(f"task id {task_id!r} is already in the ledger")
                        first.send()

                    admit_and_record(
                        [job],
                        options,
                        before_admission=quota_recount([job], caller_key, quota),
                        before_insert=send_unless_duplicate,
                    )
                    log_enqueued(job, caller_key)
                    first.confirm()
                return first.result or task.AsyncResult(job.task_id)
        except (IntegrityError, dedup.Duplicate):
            # Another submitter inserted the same idempotency key first: join its job.
            if key is None or (joined := dedup.join(task, key, priority)) is None:
                raise
            return joined
    log_enqueued(job, caller_key)
    return task.AsyncResult(job.task_id)


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
        "enqueue task_id=%s task=%s priority=%s source=%s band=%s caller=%s",
        job.task_id,
        job.task_name,
        job.effective_priority,
        job.priority_source,
        job.band,
        caller_key,
    )


def validate(task: PriorityTask, args: Any, kwargs: Any, explicit: Any) -> tuple[list[Any], dict[str, Any], int, str]:
    """Refuse bad priorities and arguments; resolve the priority the job gets."""
    if explicit is not None:
        validate_priority(explicit)
    args, kwargs = task.prepare_arguments(list(args or ()), dict(kwargs or {}))
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
    options: dict[str, Any],
    *,
    admitted: admission.Admission | None = None,
    before_admission: Callable[[], None] | None = None,
    before_insert: Callable[[], None] | None = None,
) -> None:
    """Take the jobs' places in their band (unless already ``admitted``) and insert their rows, atomically.

    ``before_admission`` runs first inside the transaction (a single submission counts its
    caller's quota there); ``before_insert`` once the jobs know their band (a single submission
    publishes there: see ``publish.FirstCopy``).
    """
    if not jobs:
        return
    with transaction.atomic():
        if before_admission is not None:
            before_admission()
        if admitted is None:
            admitted, _ = admission.admit(jobs[0].requested_priority, len(jobs))
        for job in jobs:
            job.band = admitted.band
            # The band's time limits apply unless the caller gave their own.
            for name, value in (("soft_time_limit", admitted.soft_time_limit), ("time_limit", admitted.time_limit)):
                if value is not None and options.get(name) is None:
                    job.options[name] = value
        if before_insert is not None:
            before_insert()
        if len(jobs) == 1:
            jobs[0].save(force_insert=True)
        else:
            Job.objects.bulk_create(jobs)


@contextmanager
def refusals_recorded(task_name: str, priority: Any, caller_key: str) -> Iterator[None]:
    """Store every refusal raised inside the block, then let it propagate."""
    try:
        yield
    except Rejected as exc:
        record_rejection(
            exc, task_name=task_name, priority=priority, caller_key=caller_key, band=exc.detail.get("band", "")
        )
        raise


def new_job(
    task: PriorityTask,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    task_id: str,
    priority: int,
    source: str,
    options: dict[str, Any],
) -> Job:
    """An unsaved ledger row for a fresh submission (shared by ``submit`` and batches)."""
    now = timezone.now()
    eta = publish.eta_from(options, now)
    return Job(
        task_id=task_id,
        task_name=task.name,
        args=args,
        kwargs=kwargs,
        options=publish.storable_options(options),
        requested_priority=priority,
        effective_priority=priority,
        priority_source=source,
        eta=eta,
        queued_at=now,
        aging_since=eta or now,
        published_at=now,
        next_aging_at=publish.next_aging_at(eta or now),
    )


def when_committed(publish_rows: Callable[[], None]) -> None:
    """Publish now in autocommit mode, or when the surrounding transaction commits.

    Either way the ledger rows are committed first, so a worker always finds its job's row.
    """
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(publish_rows)
    else:
        publish_rows()


def requeue_for_retry(
    task: PriorityTask, task_id: str, args: Any, kwargs: Any, *, producer: Any, options: dict[str, Any]
) -> AsyncResult:
    """Celery's ``retry()``: a new copy of the same job, at the job's own priority."""
    options = dict(options)
    # Celery copies the AMQP priority of the current delivery into the retry's options;
    # the job's own priority (maybe aged since) is what counts.
    options.pop("priority", None)
    now = timezone.now()
    eta = publish.eta_from(options, now)
    job = queue_again(
        task_id,
        retries=options.get("retries") or 0,
        eta=eta,
        aging_since=eta or now,
        published_at=now,
        next_aging_at=publish.next_aging_at(eta or now),
        args=list(args or ()),
        kwargs=dict(kwargs or {}),
    )
    if job is None:  # the row was pruned or never existed: treat the retry as a new submission
        return submit(task, args, kwargs, task_id=task_id, producer=producer, **options)
    logger.info(
        "retry task_id=%s task=%s priority=%s retries=%s", task_id, task.name, job.effective_priority, job.retries
    )
    publish.publish(task, job, producer=producer, options=options)
    return task.AsyncResult(task_id)


def queue_again(task_id: str, **changes: Any) -> Job | None:
    """Put a job that left the queue (a retry) back: a new generation, and its band place again.

    A retried job was admitted once, so its place is taken without checking the band's limit;
    the claim of the new copy gives it back, like any other.
    """
    job = Job.objects.next_generation(task_id, state=JobState.QUEUED, claimed_generation=None, **changes)
    if job is not None:
        admission.reacquire(job.band)
    return job


def record_rejection(exc: Rejected, *, task_name: str, priority: Any, caller_key: str = "", band: str = "") -> None:
    """Store a refusal; it must never be silent."""
    logger.warning(
        "reject task=%s priority=%r reason=%s band=%s caller=%s detail=%r",
        task_name,
        priority,
        exc.reason,
        band,
        caller_key,
        str(exc),
    )
    Rejection.objects.create(
        at=timezone.now(),
        task_name=storable(task_name)[:200],
        requested_priority="" if priority is None else repr(priority)[:64],
        band=band,
        reason=exc.reason,
        detail=storable(str(exc)),
        caller_key=storable(caller_key)[:200],
    )


def storable(text: str) -> str:
    """``text`` with lone surrogates escaped (``\\ud800``): the database can't store them as they are.

    A refusal of a name like ``"\\ud800"`` must be stored like any other, not fail with a
    ``UnicodeEncodeError`` instead of the ``Rejected`` the caller is owed.
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
