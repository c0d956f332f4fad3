"""The aging rule applied to ledger rows, and the sweep against the real broker (no worker)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from kombu import Connection

from queueprio.maintenance.aging import plan, sweep
from queueprio.models import AgingReason, AgingStep, Job
from tests.conftest import queue_depth
from tests.support.concurrency import run_concurrently
from tests.support.messages import drain
from tests.support.tasks import record


def job(requested: int, effective: int, *, waited: float, generation: int = 1, published_ago: float = 0) -> Job:
    now = timezone.now()
    return Job(
        requested_priority=requested,
        effective_priority=effective,
        queued_at=now - timedelta(seconds=waited),
        aging_since=now - timedelta(seconds=waited),
        published_at=now - timedelta(seconds=published_ago),
        generation=generation,
    )


@pytest.mark.parametrize(
    ("requested", "effective", "waited", "published_ago", "generation", "expected"),
    [
        (10, 10, 301, 301, 1, (9, AgingReason.AGING)),  # one threshold: one level
        (10, 9, 650, 350, 2, (8, AgingReason.AGING)),  # two thresholds
        (10, 10, 1500, 1500, 1, (6, AgingReason.AGING)),  # jumps to the cap at once
        (10, 9, 301, 1, 2, (None, AgingReason.AGING)),  # already stepped: nothing yet
        (10, 6, 1500, 301, 5, (6, AgingReason.RECOVER)),  # at its floor: a recovery copy
        (10, 6, 1500, 100, 5, (None, AgingReason.RECOVER)),  # newest copy still young
        (10, 6, 9000, 9000, 8, (None, AgingReason.RECOVER)),  # copy bound reached
        (1, 1, 301, 301, 1, (1, AgingReason.RECOVER)),  # can't improve: recovery only
    ],
)
def test_plan__steps_and_recovery(
    settings, requested: int, effective: int, waited: float, published_ago: float, generation: int, expected: tuple
) -> None:
    settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = 300
    settings.QUEUEPRIO_AGING_MAX_BOOST = 4
    settings.QUEUEPRIO_AGING_MAX_COPIES = 8
    step = plan(
        job(requested, effective, waited=waited, generation=generation, published_ago=published_ago), timezone.now()
    )
    assert (step.priority, step.reason) == expected


@pytest.mark.parametrize(
    ("requested", "admin", "waited", "expected"),
    [
        (8, 2, 1, (None, AgingReason.AGING)),  # raised by hand: not undone, nothing due yet
        (8, 2, 301, (1, AgingReason.AGING)),  # ages from the admin's 2, not from the requested 8
        (3, 9, 1, (None, AgingReason.AGING)),  # lowered by hand: the requested 3 doesn't pull it back
        (3, 9, 650, (7, AgingReason.AGING)),  # ages from 9, two thresholds after the change
    ],
)
def test_plan__after_an_admin_change_aging_counts_from_the_admins_priority(
    settings, requested: int, admin: int, waited: float, expected: tuple
) -> None:
    settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = 300
    settings.QUEUEPRIO_AGING_MAX_BOOST = 4
    changed = job(requested, admin, waited=waited, published_ago=waited)
    changed.admin_priority = admin
    changed.queued_at -= timedelta(hours=1)  # submitted long before the change: aging counts from the change
    step = plan(changed, timezone.now())
    assert (step.priority, step.reason) == expected


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_sweep__republishes_due_jobs_under_the_same_id_at_a_better_priority(broker: Connection, tmp_path, settings):
    settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = 10
    result = record.apply_async(args=["x", str(tmp_path / "o")], priority=9)
    young = record.apply_async(args=["y", str(tmp_path / "o")], priority=9)
    past = timezone.now() - timedelta(seconds=25)
    Job.objects.filter(task_id=result.id).update(queued_at=past, aging_since=past, next_aging_at=timezone.now())

    report = sweep()

    assert (report.due, report.aged) == (1, 1)
    messages = drain(broker)
    assert [(m["id"], m["priority"], m["headers"]["qp_generation"]) for m in messages] == [
        (result.id, 4, 2),  # the new copy: our 7 (9 minus two thresholds) is AMQP 4
        (result.id, 2, 1),
        (young.id, 2, 1),
    ]
    aged = Job.objects.get(task_id=result.id)
    assert (aged.effective_priority, aged.requested_priority, aged.generation) == (7, 9, 2)
    step = AgingStep.objects.get()
    assert (step.from_priority, step.to_priority, step.reason) == (9, 7, "aging")
    assert step.waited_seconds >= 25


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_sweep__failed_publish_keeps_the_job_due(broker: Connection, tmp_path, settings, monkeypatch):
    from queueprio.broker import publish

    settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = 1
    result = record.apply_async(args=["x", str(tmp_path / "o")], priority=9)
    Job.objects.update(aging_since=timezone.now() - timedelta(seconds=5), next_aging_at=timezone.now())

    def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("broker went away")

    monkeypatch.setattr(publish, "_publish_copy", broken)
    assert sweep().failed == 1
    unchanged = Job.objects.get(task_id=result.id)
    assert (unchanged.generation, unchanged.effective_priority) == (1, 9)
    assert unchanged.next_aging_at <= timezone.now()  # still due: the next sweep retries

    monkeypatch.undo()
    assert sweep().aged == 1
    assert Job.objects.get(task_id=result.id).generation == 2
    assert queue_depth(broker) == 2


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_sweep__two_at_once_republish_each_due_job_once(broker: Connection, tmp_path, settings):
    settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = 10  # wide: no second step comes due mid-test
    results = [record.apply_async(args=[str(i), str(tmp_path / "o")], priority=8) for i in range(120)]
    Job.objects.update(aging_since=timezone.now() - timedelta(seconds=15), next_aging_at=timezone.now())
    reports = run_concurrently(lambda: sweep(batch_size=50), 2)

    assert sum(r.aged for r in reports) == 120
    assert AgingStep.objects.count() == 120
    assert queue_depth(broker) == 240  # one original and exactly one aged copy each
    assert set(Job.objects.values_list("generation", flat=True)) == {2}
    assert len(results) == 120
