"""Revoke is durable: a revoked job never runs afterwards, whatever restarts; its band place and
its idempotency key are given back; ``terminate=True`` ends a running job ``cancelled``."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import chord
from kombu import Connection

import queueprio
from queueprio.models import Band, Job, JobState
from queueprio.operations.actions import cancel
from tests.support.ledger import finished
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import add, collect, slow
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def ended(task_id: str) -> Job | None:
    job = Job.objects.filter(task_id=task_id).first()
    return job if job and job.state not in (JobState.QUEUED, JobState.SCHEDULED, JobState.STARTED) else None


def test_queueprio_revoke__while_no_worker_is_up__the_job_never_runs(tmp_path: Path, broker: Connection, out) -> None:
    doomed = add.apply_async((1, 1, out), priority=5, idempotency_key="k")
    kept = add.apply_async((2, 2, out), priority=5)
    assert queueprio.revoke(doomed.id) == 1
    job = Job.objects.get(task_id=doomed.id)
    assert job.state == JobState.CANCELLED
    assert Band.objects.get(pk=job.band_id).queued == 1  # only the kept job holds a place
    # Its copy is still in RabbitMQ; a worker that never heard of the revoke gets it
    with running_worker(tmp_path):
        wait_for(lambda: finished(kept.id), timeout=60, message="the other job")
    assert lines(out) == ["add 2 2"]  # the revoked one never ran
    assert doomed.state == "REVOKED"
    # Its key is free again: the same key makes a new job
    assert add.apply_async((1, 1, out), priority=5, idempotency_key="k").id != doomed.id


def test_control_revoke__recorded_by_the_worker_that_is_up__survives_its_restart(
    tmp_path: Path, broker: Connection, out
) -> None:
    first = slow.apply_async(("blocker", out, 3.0), priority=1)
    later = add.apply_async((5, 5, out), priority=9)
    with running_worker(tmp_path) as worker:
        wait_for(lambda: "start blocker" in lines(out), timeout=60)
        wait_for(worker.answers_ping, timeout=30, message="the worker's control consumer")
        later.revoke()  # plain Celery: a broadcast to the workers that are up
        wait_for(lambda: ended(later.id), timeout=30, message="the worker to record the revoke")
    # A new worker, with an empty revoked set, still never runs it
    with running_worker(tmp_path):
        wait_for(lambda: finished(first.id), timeout=60)
    assert "add 5 5" not in lines(out)
    assert Job.objects.get(task_id=later.id).state == JobState.CANCELLED
    # and the caller hears it: REVOKED, though no worker dropped the message with the id in its
    # revoked set (the first stopped before taking it; the second claims nothing of a cancelled job)
    assert later.state == "REVOKED"


def test_admin_cancel__queued_jobs_only(tmp_path: Path, broker: Connection, out) -> None:
    waiting = add.apply_async((3, 3, out), priority=5)
    scheduled = add.apply_async((4, 4, out), priority=5, countdown=300)
    assert cancel(Job.objects.all()) == 2
    assert set(Job.objects.values_list("state", flat=True)) == {JobState.CANCELLED}
    assert waiting.state == scheduled.state == "REVOKED"


def test_terminate__a_running_job_ends_cancelled(tmp_path: Path, broker: Connection, out) -> None:
    job = slow.apply_async(("long", out, 30.0), priority=5)
    with running_worker(tmp_path) as worker:
        wait_for(lambda: "start long" in lines(out), timeout=60)
        wait_for(worker.answers_ping, timeout=30)
        queueprio.revoke(job.id, terminate=True, signal="SIGKILL")
        row = wait_for(lambda: ended(job.id), timeout=30, message="the terminated job to end")
    assert row.state == JobState.CANCELLED
    assert "done long" not in lines(out)


def test_chord_member_revoked_while_queued__the_chord_ends_once_with_its_error(
    tmp_path: Path, broker: Connection, out
) -> None:
    blocker = slow.apply_async(("blocker", out, 3.0), priority=1)
    result = chord([add.s(i, i, out) for i in range(3)], collect.s(out)).apply_async(priority=9)
    member = Job.objects.filter(task_name="sem.add").order_by("pk").first()
    assert member is not None
    with running_worker(tmp_path) as worker:
        wait_for(lambda: "start blocker" in lines(out), timeout=60)
        wait_for(worker.answers_ping, timeout=30, message="the worker's control consumer")
        # A member revoked by a broadcast while its message waits: the worker that is up ends its
        # row and stores its REVOKED (one count against the chord) ...
        result.app.AsyncResult(member.task_id).revoke()
        wait_for(lambda: ended(member.task_id), timeout=30, message="the worker to record the revoke")
        # ... then drops its message (the id is in its revoked set) without storing it again:
        # counted twice, the chord lost its counter and the body's result stayed PENDING for ever
        wait_for(lambda: result.state == "FAILURE", timeout=60, message="the chord to end with its error")
        wait_for(lambda: finished(blocker.id), timeout=30)
    assert "collect" not in " ".join(lines(out))
    assert sorted(line for line in lines(out) if line.startswith("add")) == ["add 1 1", "add 2 2"]
