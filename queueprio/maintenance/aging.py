"""Aging: the sweep that republishes waiting jobs at a better priority, so nothing starves.

RabbitMQ's priority queues are strict: under a steady stream of urgent work a priority-10
job would wait forever. The sweep (a beat task, every ``QUEUEPRIO_AGING_INTERVAL_SECONDS``)
finds queued jobs whose next step is due and publishes a new copy of each under the same
task id, at the priority the aging rule gives (``queueprio.priority.aged_priority``):
``max(1, requested - min(k * boost, max_boost))`` after ``k`` full thresholds of waiting.
The caller's ``AsyncResult`` stays valid: the result lands under the same id.

Invariants (with those of ``queueprio.worker``, which decides which copy runs):

* **Publish first, then record.** A republish sends copy ``g + 1`` and only then moves the
  row from generation ``g`` to ``g + 1`` (conditional on the row still being ``queued`` at
  ``g``). If the publish fails, the row is untouched: the job keeps its previous copy and
  stays due, so the next sweep tries again. Nothing is lost.
* **Exactly one copy runs.** Older copies stay in RabbitMQ; each one is acknowledged and
  dropped when a worker receives it, because only one copy can win the claim.
* **Lost messages are recovered.** A job whose message vanished (ledger says queued, the
  broker has none) keeps being due: each aging step publishes a fresh copy, and once the
  job is at its floor (``requested - max_boost``, or 1) the sweep republishes it at the same
  priority every threshold, as a ``recover`` step.
* **Bounded copies.** Aging adds at most ``max_boost / boost`` copies; recovery stops when a
  job reaches ``QUEUEPRIO_AGING_MAX_COPIES`` generations. So a job has at most that many
  messages in the broker, each dropped on receipt once the job has run.
* **One sweeper at a time per row.** On PostgreSQL the batch is read with
  ``SELECT … FOR UPDATE SKIP LOCKED``: two beat instances (by mistake) split the due rows
  instead of republishing them twice. On SQLite the sweep's transaction takes the database
  write lock up front (``transaction_mode = IMMEDIATE``), so concurrent sweeps run one after
  the other and the second finds the rows already stepped (no longer due).
* **Cost follows the due rows.** Due rows are read through the partial index on
  ``(state, next_aging_at)`` (queued rows only), at most ``QUEUEPRIO_AGING_BATCH_SIZE`` per
  batch, on SQLite and PostgreSQL alike (``bench/aging.py`` prints the plans).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import celery
from django.db import connection, transaction
from django.utils import timezone

from ..broker import pipeline
from ..broker.republish import Step as RepublishStep
from ..broker.republish import record
from ..conf import settings
from ..models import AgingReason, AgingStep, Job, JobState
from ..priority import aged_priority, next_aging_delay
from ..registry import AnyTask, priority_tasks
from ..worker.revoke import end_in_ledger

logger = logging.getLogger("queueprio")


@dataclass
class SweepReport:
    due: int = 0
    aged: int = 0
    recovered: int = 0
    failed: int = 0
    expired: int = 0


@dataclass(frozen=True)
class Step:
    """What the sweep does to one due job: republish at ``priority`` (or not), look again at ``next_at``."""

    priority: int | None
    reason: str
    next_at: datetime | None


def rule() -> dict[str, float]:
    return {
        "threshold": float(settings.AGING_THRESHOLD_SECONDS),
        "boost": int(settings.AGING_BOOST),
        "max_boost": int(settings.AGING_MAX_BOOST),
    }


def aging_base(job: Job) -> int:
    """The priority aging counts from: the one an admin set (from when it was set), else the requested one."""
    return job.admin_priority if job.admin_priority is not None else job.requested_priority


def plan(job: Job, now: datetime) -> Step:
    """The step for a due job: pure, given the row and the clock."""
    params = rule()
    waited = (now - (job.aging_since or job.queued_at)).total_seconds()
    base = aging_base(job)
    target = aged_priority(base, waited=waited, **params)  # type: ignore[arg-type]
    delay = next_aging_delay(base, waited=waited, **params)  # type: ignore[arg-type]
    if target < job.effective_priority:
        return Step(target, AgingReason.AGING, _after(now, delay if delay is not None else params["threshold"]))
    # At its floor (or already better, e.g. raised by hand): only a recovery copy is left to do,
    # once the newest copy has waited a whole threshold, and only up to the bound on copies.
    if delay is not None:
        return Step(None, AgingReason.AGING, _after(now, delay))
    published = job.published_at or job.queued_at
    if job.generation >= int(settings.AGING_MAX_COPIES):
        return Step(None, AgingReason.RECOVER, None)
    if (now - published).total_seconds() < params["threshold"]:
        return Step(None, AgingReason.RECOVER, published + timedelta(seconds=params["threshold"]))
    return Step(job.effective_priority, AgingReason.RECOVER, _after(now, params["threshold"]))


def _after(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)


def sweep(now: datetime | None = None, *, batch_size: int | None = None, max_batches: int = 100) -> SweepReport:
    """Step every due job, batch by batch; each batch is one short transaction."""
    report = SweepReport()
    if not (settings.AGING_ENABLED and settings.ENABLED):  # switched off, every copy is FIFO anyway
        return report
    tasks = priority_tasks()
    size = batch_size or int(settings.AGING_BATCH_SIZE)
    for _ in range(max_batches):
        stepped = _sweep_batch(now or timezone.now(), size, tasks, report)
        if stepped < size:
            break
    if report.due:
        logger.info(
            "aging sweep due=%s aged=%s recovered=%s failed=%s",
            report.due,
            report.aged,
            report.recovered,
            report.failed,
        )
    return report


def _sweep_batch(now: datetime, size: int, tasks: dict[str, AnyTask], report: SweepReport) -> int:
    """Step one batch of due jobs: publish every new copy, wait for the confirms once, record them."""
    with transaction.atomic():
        due = Job.objects.due_for_aging(now).order_by("next_aging_at")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        batch = list(due[:size])
        copies = []
        expired: list[str] = []
        for job in batch:
            report.due += 1
            if job.expires_at is not None and job.expires_at <= now:  # never republished, never run
                expired.append(job.task_id)
                continue
            step, task = plan(job, now), tasks.get(job.task_name)
            if job.state == JobState.HELD:  # it waits in the ledger: it ages there, nothing to publish
                report.aged += age_held(job, step, now)
                continue
            if step.priority is None or task is None:  # nothing to publish (or the task is gone from the code)
                Job.objects.filter(pk=job.pk).update(next_aging_at=step.next_at if task else None)
                continue
            copies.append((task, job, step, step.priority, job.generation, job.effective_priority))
            job.generation, job.effective_priority = job.generation + 1, step.priority
        confirmed, error = pipeline.send_confirmed(celery.current_app, [job for _, job, *_ in copies])
        for (_, job, step, new_priority, generation, priority), ok in zip(copies, confirmed, strict=True):
            # An unconfirmed copy leaves its row as it was: the old copy stands, the job stays due.
            recorded = ok and record(
                job, generation, priority, new_priority, RepublishStep(step.reason), now=now, next_at=step.next_at
            )
            if recorded:
                report.recovered += step.reason == AgingReason.RECOVER
                report.aged += step.reason == AgingReason.AGING
            else:
                report.failed += 1
    report.expired += len(end_in_ledger(expired, JobState.EXPIRED, reason="expired while it waited"))
    if error is not None:
        logger.warning("aging sweep: %s copies not confirmed (%s); they stay due", report.failed, error)
        return 0  # the broker is in trouble: stop here, the next sweep retries
    return len(batch)


def age_held(job: Job, step: Step, now: datetime) -> bool:
    """A held job (its band at its running limit) gains priority in the ledger: it is released
    in that order (``maintenance.due.release_held``). A recovery means nothing for it."""
    if step.reason != AgingReason.AGING or step.priority is None:
        Job.objects.filter(pk=job.pk, state=JobState.HELD).update(next_aging_at=None)
        return False
    moved = Job.objects.filter(pk=job.pk, state=JobState.HELD).update(
        effective_priority=step.priority, next_aging_at=step.next_at
    )
    if moved:
        AgingStep.objects.create(
            job=job,
            from_priority=job.effective_priority,
            to_priority=step.priority,
            generation=job.generation,
            waited_seconds=(now - job.queued_at).total_seconds(),
            reason=AgingReason.AGING,
            at=now,
        )
    return bool(moved)
