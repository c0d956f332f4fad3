"""Jobs whose time has come: delayed jobs at their ``eta``, and started jobs whose run's lease lapsed.

**Delayed jobs wait in the ledger, not in a worker.** A Celery worker holds a message with an ETA
in memory, outside prefetch, and runs it when due ahead of everything queued since: a countdown
defeats priority, and the job holds its place for its whole delay. queueprio records such a job
``scheduled`` and publishes it when due (:func:`release_due`): it then takes its band place and
its priority's place in RabbitMQ's order, and no worker ever sees an ETA.

**A run that stopped renewing its lease is over** (its process died with the connection that
would have redelivered its message, or it was cut off and stopped itself: ``worker.lease``).
:func:`recover_leases` queues such a job again as a new generation, counting a worker loss.

Both run in every worker's main process (:class:`DueStep`, a step of the worker's consumer),
about every ``QUEUEPRIO_SCHEDULER_INTERVAL_SECONDS`` and exactly when the next ``eta`` is due;
the aging sweep runs them too. Concurrent tickers split the rows (``SKIP LOCKED``
on PostgreSQL; SQLite's write lock serialises them). Each looks first with one indexed read and
only takes a write transaction when something is due.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import celery
from billiard.exceptions import WorkerLostError
from celery import bootsteps
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Min
from django.utils import timezone

from ..broker import outcome, pipeline
from ..conf import settings
from ..exceptions import lost_too_often
from ..models import AgingReason, AgingStep, Band, Job, JobState
from ..priority import next_aging_at
from ..submission.admission import publishable
from ..worker.database import MAX_DELAY
from ..worker.revoke import end_in_ledger, release_sqlite

logger = logging.getLogger("queueprio")

BATCH = 500


def _locked(queryset: object) -> list[Job]:
    rows = queryset.order_by("pk")  # type: ignore[attr-defined]
    if connection.features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True)
    return list(rows[:BATCH])


def release_due(now: datetime | None = None) -> int:
    """Publish the scheduled jobs that are due; returns how many went out."""
    now = now or timezone.now()
    if not Job.objects.due(now).exists():
        return 0
    with transaction.atomic():
        rows = _locked(Job.objects.due(now))
        expired = [job.task_id for job in rows if job.expires_at is not None and job.expires_at <= now]
        due = [job for job in rows if job.task_id not in expired]
        for job in due:
            _queue(job, now, next_aging=next_aging_at(job.eta or now, threshold=settings.aging_threshold()))
        for band_id, count in _counts(due).items():
            Band.objects.reacquire(band_id, count)
    end_in_ledger(expired, JobState.EXPIRED, reason="expired while scheduled")
    return _publish(due, now, on_failure=JobState.SCHEDULED)


def release_held(now: datetime | None = None) -> int:
    """Publish held jobs of bands with free running slots, most urgent (then oldest) first."""
    now = now or timezone.now()
    if not Job.objects.filter(state=JobState.HELD).exists():
        return 0
    released: list[Job] = []
    with transaction.atomic():
        for band in Band.objects.filter(pk__in=Job.objects.filter(state=JobState.HELD).values("band_id")):
            in_broker = Job.objects.filter(band_id=band.pk, state=JobState.QUEUED).count()
            free = publishable(band.max_running, band.running, in_broker)
            held = Job.objects.filter(state=JobState.HELD, band_id=band.pk).order_by("effective_priority", "queued_at")
            if connection.features.has_select_for_update_skip_locked:
                held = held.select_for_update(skip_locked=True)
            for job in held[: BATCH if free is None else min(free, BATCH)]:
                _queue(job, now, next_aging=next_aging_at(now, threshold=settings.aging_threshold()))
                released.append(job)
    return _publish(released, now, on_failure=JobState.HELD)


def recover_leases(now: datetime | None = None) -> int:
    """Queue again the started jobs whose run's lease lapsed (a worker loss each); returns how many."""
    now = now or timezone.now()
    if not Job.objects.lease_lapsed(now).exists():
        return 0
    limit = int(settings.MAX_WORKER_LOSSES)
    with transaction.atomic():
        rows = _locked(Job.objects.lease_lapsed(now))
        poison = [job for job in rows if job.worker_losses + 1 >= limit]
        again = [job for job in rows if job not in poison]
        for job in again:
            AgingStep.objects.create(
                job=job,
                from_priority=job.effective_priority,
                to_priority=job.effective_priority,
                generation=job.generation + 1,
                waited_seconds=(now - job.queued_at).total_seconds(),
                reason=AgingReason.LEASE,
                at=now,
            )
            _queue(job, now, next_aging=next_aging_at(now, threshold=settings.aging_threshold()), loss=True)
            Band.objects.restart(job.band_id)  # its running slot back to a waiting place
        for job in poison:
            Job.objects.end_running(job.task_id, JobState.FAILED, error=lost_too_often(job.worker_losses + 1), now=now)
    for job in poison:  # its caller's result, its chord and its errbacks, as the worker would
        outcome.store_failure(celery.current_app, job, WorkerLostError(lost_too_often(job.worker_losses + 1)))
    for job in again:
        logger.warning("lease lapsed task_id=%s worker=%s: queued again", job.task_id, job.worker)
    return _publish(again, now, on_failure=None)


def _queue(job: Job, now: datetime, *, next_aging: datetime | None, loss: bool = False) -> None:
    """Move a locked row to ``queued`` at a new generation (in memory too, for the publish)."""
    changes = {
        "state": JobState.QUEUED,
        "generation": F("generation") + 1,
        "claimed_generation": None,
        "lease_until": None,
        "published_at": now,
        "next_aging_at": next_aging,
    }
    if loss:
        changes["worker_losses"] = F("worker_losses") + 1
    Job.objects.filter(pk=job.pk).update(**changes)
    job.state, job.generation, job.published_at = JobState.QUEUED, job.generation + 1, now


def _counts(jobs: list[Job]) -> dict[int | None, int]:
    counts: dict[int | None, int] = {}
    for job in jobs:
        counts[job.band_id] = counts.get(job.band_id, 0) + 1
    return counts


def _publish(jobs: list[Job], now: datetime, *, on_failure: str | None) -> int:
    """Publish the jobs' copies; an unconfirmed due job goes back to ``scheduled`` (tried again on
    the next tick), an unconfirmed recovery stays ``queued`` for the aging sweep's recovery."""
    if not jobs:
        return 0
    confirmed, error = pipeline.send_confirmed(celery.current_app, jobs)
    lost = [job for job, ok in zip(jobs, confirmed, strict=True) if not ok]
    if lost and on_failure is not None:
        with transaction.atomic():
            for job in lost:
                moved = Job.objects.filter(pk=job.pk, state=JobState.QUEUED, generation=job.generation).update(
                    state=on_failure, published_at=None, next_aging_at=None
                )
                if moved and on_failure == JobState.SCHEDULED:  # a held job keeps its place
                    Band.objects.release(job.band_id)
    if lost:
        logger.warning("due: %s of %s copies not confirmed (%s)", len(lost), len(jobs), error)
    return len(jobs) - len(lost)


def next_eta() -> datetime | None:
    """When the next scheduled job is due (``queueprio_job_scheduled_idx``)."""
    eta: datetime | None = Job.objects.filter(state=JobState.SCHEDULED).aggregate(eta=Min("eta"))["eta"]
    return eta


#: ``time.monotonic()`` before which this process recovers no lapsed lease: a failed round (the
#: database away) pushes it on. Leases lapse while the database is away because nobody can renew
#: them; once it is back, live runs renew within a third of the lease and finished ones record
#: their finish within the retry's longest backoff (``worker.database``). Recovering before that
#: would run a finished job again (tests/machines/test_database_restart.py).
_recover_leases_after = 0.0


def tick() -> float:
    """One round; returns how long to sleep: until the next ``eta``, at most one interval."""
    global _recover_leases_after
    interval = float(settings.SCHEDULER_INTERVAL_SECONDS)
    try:
        close_old_connections()
        release_due()
        release_held()
        if time.monotonic() >= _recover_leases_after:
            recover_leases()
        upcoming = next_eta()
    except Exception:  # the database or the broker is away: try again next round
        logger.exception("due jobs: tick failed")
        _recover_leases_after = time.monotonic() + float(settings.LEASE_SECONDS) / 3 + MAX_DELAY + interval
        return interval
    finally:
        release_sqlite()
    if upcoming is None:
        return interval
    until = (upcoming - timezone.now()).total_seconds()
    return min(interval, max(until, 0.005))


class DueStep(bootsteps.StartStopStep):
    """A worker consumer's step: :func:`tick` on the consumer's own timer, for as long as it consumes.

    Registered by ``queueprio.signals`` when a worker initialises (``worker_init``, which every
    worker sends, the command's and an embedded one alike). The timer is the worker's event loop
    for the prefork pool (no thread in the main process: a thread there could take the SIGCHLD the
    pool relies on, and SQLite must not see a connection carried across the pool's forks), and
    Celery's own timer thread for the solo and threads pools.
    """

    label = "queueprio due jobs"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.stopped = True

    def start(self, parent: Any) -> None:
        self.stopped = False
        self.timer = parent.timer
        self.timer.call_after(0.0, self._on_timer)

    def stop(self, parent: Any) -> None:
        self.stopped = True

    def _on_timer(self) -> None:
        if not self.stopped:
            self.timer.call_after(tick(), self._on_timer)
