"""What the bands hold and run right now, and which jobs run now: the live view the dashboard,
``queueprio status`` and the Prometheus gauges share, read from the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count

from ..models import Band, Job, JobState


@dataclass(frozen=True)
class BandLoad:
    """One band now: its waiting and running counters, the held jobs among the waiting, its limits."""

    name: str
    queued: int
    held: int
    running: int
    max_queued: int | None
    max_running: int | None
    #: Drift the reconcile found in this band's counters and corrected, in all (``Band.corrections``).
    corrections: int = 0


def band_load() -> list[BandLoad]:
    """Every band, most urgent first, counted in the ledger (one grouped read): what the band
    counters should say, whatever drift they had (``queueprio reconcile`` corrects them)."""
    counts: dict[tuple[int | None, str], int] = {
        (band, state): n
        for band, state, n in Job.objects.filter(state__in=(JobState.QUEUED, JobState.HELD, JobState.STARTED))
        .order_by()
        .values_list("band_id", "state")
        .annotate(n=Count("pk"))
        .values_list("band_id", "state", "n")
    }
    return [
        BandLoad(
            band.name,
            counts.get((band.pk, JobState.QUEUED), 0) + counts.get((band.pk, JobState.HELD), 0),
            counts.get((band.pk, JobState.HELD), 0),
            counts.get((band.pk, JobState.STARTED), 0),
            band.max_queued,
            band.max_running,
            band.corrections,
        )
        for band in Band.objects.order_by("most_urgent")
    ]


@dataclass(frozen=True)
class Running:
    """A started job and how far along it says it is (``queueprio.progress``)."""

    pk: int
    task_id: str
    task_name: str
    effective_priority: int
    worker: str
    started_at: datetime | None
    progress: float | None
    progress_note: str

    def elapsed(self, now: datetime) -> float | None:
        return (now - self.started_at).total_seconds() if self.started_at else None


def running(limit: int) -> list[Running]:
    """Up to ``limit`` started jobs, the longest-running first."""
    rows = Job.objects.filter(state=JobState.STARTED).order_by("started_at")[:limit]
    return [
        Running(
            job.pk,
            job.task_id,
            job.task_name,
            job.effective_priority,
            job.worker,
            job.started_at,
            job.progress,
            job.progress_note,
        )
        for job in rows
    ]
