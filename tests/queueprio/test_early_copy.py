"""A copy that reaches a worker before its ledger row is committed (see ``publish.FirstCopy``).

A single submission sends its message inside the ledger transaction and commits while the
broker stores it, so a worker can receive the copy first. Against a real worker: the copy
waits for its row and runs once; with the wait switched off (the control) the same copy is
dropped; a copy whose row never appears is dropped and the worker lives on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection

from queueprio.broker import publish
from queueprio.models import Job, JobState
from tests.conftest import queue_depth
from tests.support.ledger import finished, unsaved_job
from tests.support.polling import lines, wait_for
from tests.support.tasks import record
from tests.support.worker import Worker, running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def sent_without_its_row(label: str, out: Path) -> Job:
    """Publish a job's first copy, as a submission does, but don't insert its row yet."""
    job = unsaved_job(record, [label, str(out)])
    publish.send(job)  # confirmed by RabbitMQ when this returns
    return job


def taken_by(worker: Worker, broker: Connection) -> None:
    """The worker holds the copy: nothing is left ready in the queue."""
    wait_for(lambda: queue_depth(broker) == 0, timeout=30, message=f"{worker.name} to take the copy")


def test_copy_before_its_row__waits_for_the_commit_then_runs_once(tmp_path: Path, broker: Connection) -> None:
    out = tmp_path / "out.txt"
    with running_worker(tmp_path, env={"QUEUEPRIO_CLAIM_WAIT_SECONDS": "60"}) as worker:
        # Given a copy the worker received while its row did not exist yet
        job = sent_without_its_row("early", out)
        taken_by(worker, broker)
        assert not out.exists()
        # When the row is committed
        job.save(force_insert=True)
        # Then the waiting copy claims it and runs, exactly once
        done = wait_for(lambda: finished(job.task_id), timeout=60, message="the early copy to run")
    assert done.state == JobState.SUCCEEDED
    assert lines(str(out)) == ["early"]


def test_control__without_the_wait_the_same_copy_is_dropped(tmp_path: Path, broker: Connection) -> None:
    out = tmp_path / "out.txt"
    with running_worker(tmp_path, env={"QUEUEPRIO_CLAIM_WAIT_SECONDS": "0"}) as worker:
        job = sent_without_its_row("early", out)
        taken_by(worker, broker)
        wait_for(
            lambda: f"drop copy without a ledger row task_id={job.task_id}" in worker.output(),
            timeout=30,
            message="the worker to drop the copy",
        )
        # The row arrives after the copy was dropped: nothing is left to run it
        job.save(force_insert=True)
        assert queue_depth(broker) == 0
        assert worker.proc.poll() is None
    assert not out.exists()
    assert Job.objects.get(task_id=job.task_id).state == JobState.QUEUED


def test_copy_whose_row_never_commits__is_dropped_and_the_worker_goes_on(tmp_path: Path, broker: Connection) -> None:
    out = tmp_path / "out.txt"
    with running_worker(tmp_path, env={"QUEUEPRIO_CLAIM_WAIT_SECONDS": "0.5"}) as worker:
        # A submission that sent its copy and then rolled back: its row never appears
        ghost = sent_without_its_row("ghost", out)
        after = record.apply_async(args=["after", str(out)], priority=5)
        wait_for(lambda: finished(after.id), timeout=60, message="the next job on the same worker")
        assert f"drop copy without a ledger row task_id={ghost.task_id}" in worker.output()
    assert lines(str(out)) == ["after"]
    assert not Job.objects.filter(task_id=ghost.task_id).exists()
