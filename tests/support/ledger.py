"""Ledger rows written directly, at chosen times, for tests of what is computed from them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from celery import states
from django_celery_results.models import TaskResult
from kombu.utils.uuid import uuid

from queueprio.models import AgingStep, Band, Job, Rejection


def make_job(
    *,
    queued_at: datetime,
    priority: int = 5,
    task: str = "tests.record",
    state: str = "queued",
    effective: int | None = None,
    **fields: Any,
) -> Job:
    if isinstance(fields.get("band"), str):  # a band by name, as it was admitted to
        fields["band_name"] = fields["band"]
        fields["band"] = Band.objects.filter(name=fields["band"]).first()
    return Job.objects.create(
        task_id=uuid(),
        task_name=task,
        requested_priority=priority,
        effective_priority=priority if effective is None else effective,
        priority_source="call",
        state=state,
        queued_at=queued_at,
        **fields,
    )


def make_rejection(
    *, at: datetime, reason: str = "queue_full", task: str = "tests.record", priority: str = "3"
) -> Rejection:
    return Rejection.objects.create(at=at, task_name=task, requested_priority=priority, reason=reason)


def make_aging_step(
    job: Job, *, at: datetime, from_priority: int, to_priority: int, reason: str = "aging"
) -> AgingStep:
    waited = (at - job.queued_at).total_seconds()
    return AgingStep.objects.create(
        job=job,
        from_priority=from_priority,
        to_priority=to_priority,
        generation=2,
        waited_seconds=waited,
        reason=reason,
        at=at,
    )


def finished(task_id: str) -> Job | None:
    """The job's row once it succeeded or failed, else ``None`` (for ``wait_for``)."""
    job = Job.objects.filter(task_id=task_id).first()
    return job if job and job.state in ("succeeded", "failed") else None


def stored_result(task_id: str) -> TaskResult | None:
    """The job's result once Celery stored its final state, else ``None`` (for ``wait_for``).

    The ledger row is finished inside the task, before Celery stores the outcome (and after
    it stored ``STARTED``), so a test that saw the row finish polls for this too."""
    stored = TaskResult.objects.filter(task_id=task_id).first()
    return stored if stored and stored.status in states.READY_STATES else None


def stored_statuses() -> dict[str, int]:
    """How many stored results per status, for the jobs in the ledger only.

    Only this test's jobs: a module-scoped worker of an earlier module may store a result
    after that module's last flush, and it must not count here."""
    ours = list(Job.objects.values_list("task_id", flat=True))
    return dict(Counter(TaskResult.objects.filter(task_id__in=ours).values_list("status", flat=True)))


def unsaved_job(task: Any, args: list[Any], kwargs: dict[str, Any] | None = None, *, priority: int = 5) -> Job:
    """A job as a submission builds it (Celery's message captured, a token), not yet saved."""
    from queueprio.submission.jobs import capture, new_job

    with task.app.producer_or_acquire(None) as producer:
        message = capture(task, producer, args, kwargs or {}, task_id=uuid(), priority=priority, options={})
    return new_job(task, message, args=args, kwargs=kwargs or {}, priority=priority, source="call")
