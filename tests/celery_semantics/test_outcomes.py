"""Outcomes stored by something other than the worker running the job (a revoke with no worker up,
a run lost too often for the scheduler to queue it again) reach the canvas as a worker's would: a
chord whose header member ended that way fails instead of waiting forever. The control stores the
same outcome without the message's request, as before: the chord's counter never reaches zero."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from celery import chord
from celery.exceptions import ChordError
from celery.result import AsyncResult
from django.utils import timezone
from django_celery_results.models import ChordCounter, TaskResult
from kombu import Connection

import queueprio
from queueprio.broker import outcome
from queueprio.maintenance.due import recover_leases
from queueprio.models import Band, Job, JobState
from tests.support.ledger import finished
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import add, collect
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def chord_of_three(out: str):
    result = chord([add.s(i, i, out) for i in range(3)], collect.s(out)).apply_async(priority=5)
    members = list(Job.objects.order_by("pk").values_list("task_id", flat=True))
    assert len(members) == 3
    return result, members


def body_failed(result: AsyncResult, why: str) -> None:
    """The chord's body ends FAILURE with Celery's ChordError naming the member's error. (Its
    ``get()`` would raise the member's own error as soon as that is stored: Celery re-raises a
    failed parent's error while waiting, so the body's state is what shows the chord ended.)"""
    wait_for(lambda: result.state == "FAILURE", timeout=60, message="the chord's body to fail")
    assert isinstance(result.result, ChordError)
    assert why in str(result.result)


def test_revoked_header_member__with_no_worker_up__the_chord_fails(tmp_path: Path, broker: Connection, out) -> None:
    result, members = chord_of_three(out)
    assert queueprio.revoke(members[0]) == 1
    with running_worker(tmp_path):
        wait_for(lambda: all(finished(m) for m in members[1:]), timeout=60, message="the other members")
        body_failed(result, "revoked")
    assert "collect" not in " ".join(lines(out))  # the body never ran


def test_control__revoke_stored_without_the_request__the_chord_waits_forever(
    tmp_path: Path, broker: Connection, out, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outcome, "request_of", lambda app, job: None)
    result, members = chord_of_three(out)
    assert queueprio.revoke(members[0]) == 1
    with running_worker(tmp_path):
        wait_for(lambda: all(finished(m) for m in members[1:]), timeout=60, message="the other members")
    # Every member has an outcome, but the chord still counts one missing: its body never comes
    assert TaskResult.objects.filter(task_id__in=members).count() == 3
    assert ChordCounter.objects.get(group_id=result.parent.id).count == 1
    assert result.state == "PENDING"


def test_run_lost_too_often__failed_by_the_scheduler__its_result_and_chord_fail(
    broker: Connection, out, settings: object
) -> None:
    settings.QUEUEPRIO_MAX_WORKER_LOSSES = 3  # type: ignore[attr-defined]
    result, members = chord_of_three(out)
    # The first member's run was lost twice already, and its third run's lease lapsed
    Job.objects.filter(task_id=members[0]).update(
        state=JobState.STARTED, worker_losses=2, lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert Band.objects.start(Job.objects.get(task_id=members[0]).band_id)  # its place became a slot
    assert recover_leases() == 0  # given up, not queued again
    job = Job.objects.get(task_id=members[0])
    assert job.state == JobState.FAILED
    assert job.error.startswith("WorkerLost: the run of this job was lost 3 times")
    assert TaskResult.objects.get(task_id=members[0]).status == "FAILURE"
    # The chord's body comes once every member has an outcome; revoke the others (no worker runs)
    assert queueprio.revoke(members[1:]) == 2
    body_failed(result, "WorkerLost")
