"""The books balance: band counters by key, reconciled from the ledger, admin retries counted once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from kombu import Connection

from queueprio.maintenance.reconcile import reconcile
from queueprio.models import Band, Job, JobState
from queueprio.operations.actions import retry_failed
from tests.support.semantics_tasks import add

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_a_renamed_band_still_counts_its_jobs(broker: Connection, out: str) -> None:
    job = add.apply_async((1, 1, out), priority=5)
    Band.objects.filter(name="normal").update(name="standard")  # staff rename it
    Job.objects.filter(task_id=job.id).update(state=JobState.PUBLISH_FAILED)
    from queueprio.worker.revoke import end_in_ledger  # the band place is given back by key

    Job.objects.filter(task_id=job.id).update(state=JobState.QUEUED)
    assert end_in_ledger([job.id], JobState.CANCELLED, reason="test") == [job.id]
    assert Band.objects.get(name="standard").queued == 0


def test_reconcile__fixes_drift_and_counts_it(broker: Connection, out: str) -> None:
    add.apply_async((1, 1, out), priority=5)
    Band.objects.filter(name="normal").update(queued=7)  # drift, however it came
    drifts = reconcile()
    assert [(d.band, d.counter, d.ledger) for d in drifts] == [("normal", 7, 1)]
    band = Band.objects.get(name="normal")
    assert (band.queued, band.corrections) == (1, 6)
    assert reconcile() == []  # balanced now


def test_racing_admin_retries__count_the_job_once(broker: Connection, out: str) -> None:
    job = add.apply_async((1, 1, out), priority=5)
    Job.objects.filter(task_id=job.id).update(state=JobState.FAILED)
    Band.objects.filter(name="normal").update(queued=0)

    def retry() -> int:
        try:
            return retry_failed(Job.objects.filter(task_id=job.id))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(4) as pool:
        retried = sum(pool.map(lambda _: retry(), range(4)))
    assert retried == 1
    assert Band.objects.get(name="normal").queued == 1


def test_reconcile_command__reports_and_fixes(broker: Connection, out: str) -> None:
    from io import StringIO

    from django.core.management import call_command

    add.apply_async((1, 1, out), priority=5)
    Band.objects.filter(name="normal").update(queued=3)
    printed = StringIO()
    call_command("queueprio", "reconcile", stdout=printed)
    assert "band normal: counter 3, ledger 1: corrected" in printed.getvalue()
    assert Band.objects.get(name="normal").queued == 1
