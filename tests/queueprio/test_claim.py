"""The claim when a row is committed between its UPDATE and the look that follows it.

A worker can receive a job's first copy while the submission is committing (``publish.FirstCopy``).
Its claim ``UPDATE`` can then miss the row (it took its snapshot just before the commit),
and a read straight after finds it. Seen on PostgreSQL under load: the copy was judged stale
and dropped, and the job never ran. The interleaving is made here by committing the row right
after the real ``UPDATE`` ran, in the claim's own database calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from celery.exceptions import Ignore
from django.utils import timezone

from queueprio.broker.protocol import HEADER_GENERATION, HEADER_TOKEN
from queueprio.models import Job, JobState
from queueprio.models.job_queries import JobQuerySet
from queueprio.worker import claim as execution
from tests.support.ledger import unsaved_job
from tests.support.tasks import record

pytestmark = pytest.mark.django_db(transaction=True)


def a_job(generation: int = 1) -> Job:
    job = unsaved_job(record, ["x", "/dev/null"])
    job.generation = generation
    return job


@contextmanager
def delivered(job: Job, generation: int) -> Iterator[None]:
    """``record``'s request as a worker sees it for the copy of ``generation``."""
    record.push_request(id=job.task_id, delivery_info={"redelivered": False}, hostname="w@test")
    setattr(record.request, HEADER_GENERATION, generation)
    setattr(record.request, HEADER_TOKEN, job.token)
    try:
        yield
    finally:
        record.pop_request()


def committed_right_after_the_first_update(monkeypatch: pytest.MonkeyPatch, job: Job) -> list[str]:
    """Run the real claim UPDATE, then commit ``job``'s row before the claim looks again."""
    real_claim = JobQuerySet.claim
    outcomes: list[str] = []

    def claim(self: JobQuerySet, *args: object, **kwargs: object) -> object:
        won = real_claim(self, *args, **kwargs)  # type: ignore[arg-type]
        outcomes.append("claimed" if won is not None else "")
        if len(outcomes) == 1:
            job.save(force_insert=True)
        return won

    monkeypatch.setattr(JobQuerySet, "claim", claim)
    return outcomes


def test_claim__row_committed_after_the_update__is_claimed_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    job = a_job()
    outcomes = committed_right_after_the_first_update(monkeypatch, job)
    with delivered(job, 1):
        assert execution.claim(record) == 1
    # The first UPDATE did miss the row (the race is real), the second claimed it
    assert outcomes == ["", "claimed"]
    assert Job.objects.get(task_id=job.task_id).state == JobState.STARTED


def test_control__a_copy_older_than_the_row_it_finds_is_still_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same interleaving, but the row that appears is at generation 2: this copy is stale
    job = a_job(generation=2)
    outcomes = committed_right_after_the_first_update(monkeypatch, job)
    with delivered(job, 1), pytest.raises(Ignore):
        execution.claim(record)
    assert outcomes == [""]
    assert Job.objects.get(task_id=job.task_id).state == JobState.QUEUED


def test_control__a_copy_of_a_job_that_already_started_is_dropped() -> None:
    # A live run holds it: its lease is current
    job = a_job()
    job.state = JobState.STARTED
    job.claimed_generation = 1
    job.lease_until = timezone.now() + timedelta(seconds=60)
    job.save(force_insert=True)
    with delivered(job, 1), pytest.raises(Ignore):
        execution.claim(record)
