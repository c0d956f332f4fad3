"""A job waiting in the ledger (``held`` at its band's running limit, or ``scheduled`` until its
countdown) meets the submission paths like a queued one: a duplicate joins and raises it, a
resend of its task id replaces it, and the band counters still equal the ledger (the autouse
``books_balance`` fixture checks them after each test)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from kombu import Connection

from queueprio.maintenance.due import release_due
from queueprio.models import AgingReason, AgingStep, Band, Job, JobState
from tests.support.semantics_tasks import add

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def held(priority: int, out: str, **options: object) -> Job:
    """A job whose copy met its band at the running limit (what the claim does then)."""
    result = add.apply_async((1, 1, out), priority=priority, **options)
    job = Job.objects.get(task_id=result.id)
    assert Job.objects.hold(job.task_id, job.generation)
    return Job.objects.get(task_id=result.id)


def test_duplicate_of_a_held_job__joins_it_and_raises_it_in_its_band(broker: Connection, out: str) -> None:
    first = held(9, out, idempotency_key="k")
    long_ago = timezone.now() - timedelta(hours=1)
    Job.objects.filter(pk=first.pk).update(aging_since=long_ago)  # held for an hour: aged far
    # A duplicate asking for more urgency (before: dedup didn't see held jobs, and the insert hit
    # the unique index with an IntegrityError)
    again = add.apply_async((1, 1, out), priority=3, idempotency_key="k")
    assert again.id == first.task_id
    assert Job.objects.filter(idempotency_key="k").count() == 1
    job = Job.objects.get(task_id=first.task_id)
    # Raised in the ledger, still held in its band (as aging leaves a held job), one place
    assert (job.state, job.effective_priority, job.requested_priority) == (JobState.HELD, 3, 3)
    assert job.band_id == first.band_id
    # and its aging starts over at the new priority (an hour's aging from 3 would have made it 1)
    assert job.aging_since is not None
    assert job.aging_since > long_ago + timedelta(minutes=59)
    assert job.next_aging_at is not None
    assert job.next_aging_at > timezone.now()
    # A less urgent duplicate joins without lowering it
    assert add.apply_async((1, 1, out), priority=9, idempotency_key="k").id == first.task_id
    assert Job.objects.get(task_id=first.task_id).effective_priority == 3


def test_resend_of_a_held_job__the_new_message_takes_its_one_place(broker: Connection, out: str) -> None:
    first = held(9, out)
    background = Band.objects.get(name="background")
    assert background.queued == 1
    # The task id sent again (a frozen signature applied twice; before: a second place was taken)
    add.apply_async((2, 2, out), priority=9, task_id=first.task_id)
    job = Job.objects.get(task_id=first.task_id)
    assert (job.state, job.generation, job.args[:2]) == (JobState.QUEUED, first.generation + 1, [2, 2])
    assert Band.objects.get(pk=background.pk).queued == 1
    assert AgingStep.objects.filter(job=job, reason=AgingReason.RESEND).count() == 1


def test_raise_of_a_scheduled_job__takes_its_place_in_the_new_band_when_due(broker: Connection, out: str) -> None:
    first = add.apply_async((1, 1, out), priority=9, countdown=60, idempotency_key="s")
    urgent, background = Band.objects.get(name="urgent"), Band.objects.get(name="background")
    add.apply_async((1, 1, out), priority=1, idempotency_key="s")
    job = Job.objects.get(task_id=first.id)
    assert (job.state, job.effective_priority, job.band_id) == (JobState.SCHEDULED, 1, urgent.pk)
    # When due, the place it takes is the urgent band's (before: the background band's)
    Job.objects.filter(pk=job.pk).update(eta=timezone.now() - timedelta(seconds=1))
    assert release_due() == 1
    assert (Band.objects.get(pk=urgent.pk).queued, Band.objects.get(pk=background.pk).queued) == (1, 0)
