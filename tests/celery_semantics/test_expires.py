"""``expires`` is an absolute time fixed at submission: an expired job is never run or republished,
its row ends ``expired`` and its band place is given back."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from kombu import Connection

from queueprio.broker.message import header_time
from queueprio.broker.publish import message_of
from queueprio.maintenance.due import release_due
from queueprio.models import Band, Job, JobState
from tests.celery_semantics.conftest import age_now
from tests.support.ledger import finished
from tests.support.messages import drain
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import add
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_relative_expires__is_fixed_at_submission_and_kept_by_every_copy(broker: Connection, aged, out) -> None:
    result = add.apply_async((1, 1, out), priority=9, expires=60)
    job = Job.objects.get(task_id=result.id)
    assert job.expires_at is not None
    assert header_time(message_of(job).headers["expires"]) == job.expires_at
    time.sleep(0.01)
    age_now([result.id])
    copies = drain(broker)
    assert len(copies) == 2
    assert {header_time(c["headers"]["expires"]) for c in copies} == {job.expires_at}  # not restarted
    assert all("expiration" not in c["properties"] for c in copies)  # RabbitMQ doesn't drop it silently


def test_expired_while_waiting__never_runs_and_the_sweep_ends_it(tmp_path: Path, broker: Connection, aged, out):
    result = add.apply_async((2, 2, out), priority=9, expires=0.5)
    kept = add.apply_async((3, 3, out), priority=9)
    band = Job.objects.get(task_id=result.id).band_id
    expires_at = Job.objects.get(task_id=result.id).expires_at
    wait_for(lambda: expires_at is not None and expires_at < timezone.now(), timeout=5, message="the job to expire")
    age_now([result.id, kept.id])  # the sweep ends the expired one instead of republishing it
    assert Job.objects.get(task_id=result.id).state == JobState.EXPIRED
    with running_worker(tmp_path):
        wait_for(lambda: finished(kept.id), timeout=60)
    assert lines(out) == ["add 3 3"]
    assert Band.objects.get(pk=band).queued == 0


def test_expired_while_scheduled__ends_expired_and_the_caller_hears_revoked(broker: Connection, out: str) -> None:
    # A countdown job waits in the ledger, with no message anywhere, and expires there
    result = add.apply_async((6, 6, out), priority=5, countdown=60, expires=61)
    past = timezone.now() - timedelta(seconds=1)
    Job.objects.filter(task_id=result.id).update(eta=past, expires_at=past)
    assert release_due() == 0  # nothing published
    assert Job.objects.get(task_id=result.id).state == JobState.EXPIRED
    # No worker will ever drop a message for it: the caller gets Celery's REVOKED from the ledger
    # (before: PENDING for ever)
    assert result.state == "REVOKED"


def test_expired_in_the_queue__the_worker_drops_it_and_the_ledger_says_expired(
    tmp_path: Path, broker: Connection, out
) -> None:
    result = add.apply_async((4, 4, out), priority=5, expires=0.5)
    time.sleep(1.0)  # let it expire before any worker exists (the only sleep: making time pass)
    with running_worker(tmp_path):
        row = wait_for(lambda: Job.objects.filter(task_id=result.id, state=JobState.EXPIRED).first(), timeout=60)
    assert lines(out) == []
    assert result.state == "REVOKED"
    assert Band.objects.get(pk=row.band_id).queued == 0


def test_duplicate_of_an_expired_job__makes_a_new_job(broker: Connection, out: str) -> None:
    first = add.apply_async((7, 7, out), priority=5, expires=60, idempotency_key="e")
    # expired in the ledger, before any sweep came round to end it
    Job.objects.filter(task_id=first.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    again = add.apply_async((7, 7, out), priority=5, idempotency_key="e")
    # Joining would have handed the caller a job no worker will run (before: the same id)
    assert again.id != first.id
    assert Job.objects.get(task_id=first.id).state == JobState.EXPIRED
    assert first.state == "REVOKED"
    assert Job.objects.get(task_id=again.id).state == JobState.QUEUED


def test_set_priority_of_an_expired_job__ends_it_instead_of_a_new_copy(broker: Connection, out: str) -> None:
    from queueprio.operations.actions import set_priority

    result = add.apply_async((8, 8, out), priority=9, expires=60)
    Job.objects.filter(task_id=result.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert set_priority(Job.objects.filter(task_id=result.id), 1, changed_by="admin") == 0
    assert Job.objects.get(task_id=result.id).state == JobState.EXPIRED
    assert len(drain(broker)) == 1  # the first copy only: no second one published
