"""Pruning removes only what is past its retention, in batches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from queueprio.maintenance.retention import prune
from queueprio.models import Job, JobState, Rejection

pytestmark = pytest.mark.django_db


def job(task_id: str, state: str, finished_days_ago: float | None) -> Job:
    now = timezone.now()
    finished = None if finished_days_ago is None else now - timedelta(days=finished_days_ago)
    return Job(
        task_id=task_id,
        task_name="t",
        requested_priority=5,
        effective_priority=5,
        priority_source="call",
        state=state,
        queued_at=now - timedelta(days=60),
        finished_at=finished,
    )


def test_prune__deletes_old_finished_jobs_and_rejections_only(settings) -> None:
    settings.QUEUEPRIO_JOB_RETENTION_DAYS = 30
    settings.QUEUEPRIO_REJECTION_RETENTION_DAYS = 7
    settings.QUEUEPRIO_PRUNE_BATCH_SIZE = 3
    old = [job(f"old{i}", JobState.SUCCEEDED, 40) for i in range(7)]
    Job.objects.bulk_create([*old, job("recent", JobState.FAILED, 1), job("waiting", JobState.QUEUED, None)])
    now = timezone.now()
    Rejection.objects.bulk_create([Rejection(at=now - timedelta(days=d), reason="queue_full") for d in (1, 8, 9)])

    assert prune() == {"rejections": 2, "jobs": 7}
    assert sorted(Job.objects.values_list("task_id", flat=True)) == ["recent", "waiting"]
    assert Rejection.objects.count() == 1
