"""Delayed jobs are held by queueprio, not by workers: a job with a ``countdown``/``eta`` waits
``scheduled`` in the ledger, outside its band, and is published when due, so it takes its place in
the broker's priority order. Plain Celery tasks, whose ETA the worker holds, are the control."""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection

from queueprio.models import Band, Job, JobState
from tests.conftest import queue_depth
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import plain_record
from tests.support.tasks import record
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_countdown__scheduled_outside_its_band_until_due(broker: Connection, out) -> None:
    result = record.apply_async(("later", out), priority=9, countdown=300)
    job = Job.objects.get(task_id=result.id)
    assert job.state == JobState.SCHEDULED
    assert Band.objects.get(name="background").queued == 0  # no place held while it waits
    assert queue_depth(broker) == 0  # nothing in RabbitMQ either


def run_delayed_then_urgent(tmp_path: Path, out: str, task: object) -> list[str]:
    """As reported: on an idle one-process worker, six bulk jobs with one countdown come due, then
    one urgent job is submitted; the order they ran in."""
    with running_worker(tmp_path, concurrency=1):
        for i in range(6):
            if task is record:
                record.apply_async((f"bulk{i}", out, 0.3), priority=10, countdown=1)
            else:
                plain_record.apply_async((f"bulk{i}", out, 0.3), countdown=1)
        wait_for(lambda: len(lines(out)) >= 1, timeout=30, message="the first due bulk job to start")
        record.apply_async(("urgent", out), priority=1)
        wait_for(lambda: len(lines(out)) >= 7, timeout=60, message="every job")
    return lines(out)


def test_countdown__a_due_bulk_job_does_not_overtake_a_more_urgent_one(tmp_path: Path, broker: Connection, out):
    order = run_delayed_then_urgent(tmp_path, out, record)
    # One bulk job had started when the urgent one came (the bound: one per worker process)
    assert order.index("urgent") <= 1, order


def test_control__eta_held_by_the_worker__the_urgent_job_runs_after_every_due_one(
    tmp_path: Path, broker: Connection, out
) -> None:
    # Without queueprio holding it (a plain task), the worker keeps the ETA messages in memory
    # and runs the due ones before the urgent job that was queued after them (all of them, or all
    # but the last when the worker's ETA timer fires for it a moment after the urgent one arrives).
    order = run_delayed_then_urgent(tmp_path, out, plain_record)
    assert order.index("urgent") >= 5, order


def test_countdown__published_close_to_its_time(tmp_path: Path, broker: Connection, out) -> None:
    with running_worker(tmp_path):
        results = [record.apply_async((f"t{i}", out), priority=5, countdown=1.0) for i in range(5)]
        wait_for(lambda: len(lines(out)) == 5, timeout=60)
    late = []
    for result in results:
        job = Job.objects.get(task_id=result.id)
        assert job.eta is not None
        assert job.started_at is not None
        late.append((job.started_at - job.eta).total_seconds())
    assert min(late) >= 0  # never early
    assert max(late) < 1.5, late  # the scheduler's interval (0.5 s) plus a worker's start
