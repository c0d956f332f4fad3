"""The public read view of the ledger: what became of a job (``queueprio.job``, ``queueprio.jobs``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..models import Job

#: Ids per query when many jobs are asked for at once (SQLite caps a statement's parameters).
CHUNK = 500

FIELDS = (
    "task_id",
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


def jobs(task_ids: Sequence[str]) -> list[JobInfo | None]:
    """The ledger's view of each of ``task_ids``, in the order given (``None``: no such job)."""
    found: dict[str, JobInfo] = {}
    ids = list(task_ids)
    for start in range(0, len(ids), CHUNK):
        for row in Job.objects.filter(task_id__in=ids[start : start + CHUNK]).values(*FIELDS):
            found[row["task_id"]] = JobInfo(**row)
    return [found.get(task_id) for task_id in ids]


def job(task_id: str) -> JobInfo | None:
    """The ledger's view of one job, or ``None`` if there is no such job (never submitted, or pruned)."""
    return jobs([task_id])[0]
