"""A worker that saw its run's process die ends that run's lease only if it still holds the job.

A takeover keeps the generation: the other host's run of the same job must keep its lease when
the first worker hears of its own run's death late (its link came back)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from queueprio.models import Job
from tests.support.ledger import make_job

pytestmark = pytest.mark.django_db


def test_end_lease_spares_another_workers_takeover() -> None:
    now = timezone.now()
    later = now + timedelta(seconds=30)
    job = make_job(queued_at=now, state="started", claimed_generation=1, worker="b@host1", lease_until=later)

    assert not Job.objects.end_lease(job.task_id, 1, now, worker="a@host0")
    assert Job.objects.get(pk=job.pk).lease_until == later
    assert Job.objects.end_lease(job.task_id, 1, now, worker="b@host1")
    assert Job.objects.get(pk=job.pk).lease_until == now


def test_control__without_the_worker_any_holder_loses_its_lease() -> None:
    now = timezone.now()
    job = make_job(queued_at=now, state="started", claimed_generation=1, worker="b@host1", lease_until=now)
    assert Job.objects.end_lease(job.task_id, 1, now)
