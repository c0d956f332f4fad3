"""The public read view of the ledger: what became of a job (``queueprio.job``, ``queueprio.jobs``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.utils import timezone

from ..models import Job, JobState
from .capacity import processes_by_queue
from .position import expected_start, position

#: Ids per query when many jobs are asked for at once (SQLite caps a statement's parameters).
CHUNK = 500

FIELDS = (
    "task_id",
    "progress",
    "progress_note",
    "task_name",
    "state",
    "requested_priority",
    "effective_priority",
    "args",
    "kwargs",
    "error",
    "queued_at",
    "started_at",
    "finished_at",
)


@dataclass(frozen=True)
class JobInfo:
    """One job as the ledger has it. Priorities are queueprio's scale (1 = most urgent)."""

    task_id: str
    task_name: str
    state: str
    requested_priority: int
    effective_priority: int
    args: list[Any]
    kwargs: dict[str, Any]
    error: str
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    #: 0–1 as the running job last reported it (``queueprio.progress``), and its note.
    progress: float | None = None
    progress_note: str = ""
    #: Jobs RabbitMQ hands out before this one, and when it is expected to start (``job()`` only).
    position: int | None = None
    expected_start: datetime | None = None


def jobs(task_ids: Sequence[str]) -> list[JobInfo | None]:
    """The ledger's view of each of ``task_ids``, in the order given (``None``: no such job)."""
    found: dict[str, JobInfo] = {}
    ids = list(task_ids)
    for start in range(0, len(ids), CHUNK):
        for row in Job.objects.filter(task_id__in=ids[start : start + CHUNK]).values(*FIELDS):
            found[row["task_id"]] = JobInfo(**row)
    return [found.get(task_id) for task_id in ids]


def job(task_id: str) -> JobInfo | None:
    """The ledger's view of one job, or ``None`` if there is no such job (never submitted, or pruned).

    A waiting job also gets its position and expected start (``observability.position``; the
    worker count is asked of the workers and cached).
    """
    info = jobs([task_id])[0]
    row = Job.objects.filter(task_id=task_id).first()
    if info is None or row is None or row.state not in (JobState.QUEUED, JobState.HELD, JobState.SCHEDULED):
        return info
    workers = processes_by_queue().get(row.queue, 0) if row.state != JobState.SCHEDULED else 0
    return replace(
        info,
        position=position(row),
        expected_start=expected_start(row, now=timezone.now(), workers=workers) if workers else row.eta,
    )
