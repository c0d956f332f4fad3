"""Worker side against real workers: retries keep their row and priority; old clients still run."""

from __future__ import annotations

from pathlib import Path

import pytest
from django_celery_results.models import TaskResult
from kombu import Connection

from queueprio.models import Job, JobState, PrioritySource
from tests.support.ledger import finished
from tests.support.messages import drain
from tests.support.polling import lines, wait_for
from tests.support.tasks import flaky, record
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_retry__keeps_the_ledger_row_and_the_priority(tmp_path: Path, broker: Connection) -> None:
    out = tmp_path / "attempts.txt"
    result = flaky.apply_async(args=[str(out), 2], priority=2)
    with running_worker(tmp_path):
        job = wait_for(lambda: finished(result.id), timeout=60, message="the flaky job to finish")
    # Three attempts, each delivered at AMQP 9 (our 2), all under one ledger row
    assert lines(str(out)) == ["attempt 0 priority=9", "attempt 1 priority=9", "attempt 2 priority=9"]
    assert Job.objects.filter(task_id=result.id).count() == 1
    assert (job.state, job.retries, job.effective_priority, job.generation) == (JobState.SUCCEEDED, 2, 2, 3)
    assert TaskResult.objects.get(task_id=result.id).status == "SUCCESS"


def test_send_task_without_queueprio__runs_at_default_and_gets_a_row(tmp_path: Path, broker: Connection) -> None:
    from project.celery import app

    out = tmp_path / "out.txt"
    # An old client: plain send_task by name, no priority, no queueprio headers.
    result = app.send_task("tests.record", args=["old", str(out)])
    assert not Job.objects.filter(task_id=result.id).exists()
    # The router gave it the task's default priority (5 -> AMQP 6), not AMQP 0.
    [message] = drain(broker)
    assert (message["id"], message["priority"]) == (result.id, 6)
    result = app.send_task("tests.record", args=["old", str(out)])
    with running_worker(tmp_path):
        job = wait_for(lambda: finished(result.id), timeout=60, message="the old client's job to finish")
    assert lines(str(out)) == ["old"]
    assert (job.state, job.priority_source, job.effective_priority) == (JobState.SUCCEEDED, PrioritySource.EXTERNAL, 5)


def test_band_soft_time_limit__fails_the_job_with_a_clear_error(tmp_path: Path, broker: Connection) -> None:
    from queueprio.models import Band

    Band.objects.filter(name="urgent").update(soft_time_limit=0.5, time_limit=5)
    out = tmp_path / "out.txt"
    slow = record.apply_async(args=["slow", str(out), 2.0], priority=1)
    quick = record.apply_async(args=["quick", str(out), 2.0], priority=9)  # background band: 3600 s
    with running_worker(tmp_path, concurrency=2):
        job = wait_for(lambda: finished(slow.id), timeout=60, message="the slow urgent job to fail")
        wait_for(lambda: finished(quick.id), timeout=60, message="the background job to finish")
    assert job.state == JobState.FAILED
    assert job.error.startswith("SoftTimeLimitExceeded: soft time limit of 0.5s exceeded (band urgent)")
    assert Job.objects.get(task_id=quick.id).state == JobState.SUCCEEDED


def test_band_hard_time_limit__kills_the_run_and_fails_the_job(tmp_path: Path, broker: Connection) -> None:
    from queueprio.models import Band

    Band.objects.filter(name="urgent").update(soft_time_limit=None, time_limit=1)
    out = tmp_path / "out.txt"
    stuck = record.apply_async(args=["stuck", str(out), 30.0], priority=1)
    after = record.apply_async(args=["after", str(out)], priority=9)
    with running_worker(tmp_path) as worker:
        job = wait_for(lambda: finished(stuck.id), timeout=60, message="the stuck job to be killed")
        wait_for(lambda: finished(after.id), timeout=60, message="the next job on the same worker")
        assert worker.proc.poll() is None
    assert (job.state, job.error.split(":")[0]) == (JobState.FAILED, "TimeLimitExceeded")
    assert TaskResult.objects.get(task_id=stuck.id).status == "FAILURE"


def test_poison_message__fails_after_max_worker_losses_instead_of_looping(tmp_path: Path, broker: Connection) -> None:
    from queueprio.models import Band
    from tests.conftest import queue_depth
    from tests.support.tasks import crash_worker

    Band.objects.update(time_limit=None, soft_time_limit=None)
    out = tmp_path / "out.txt"
    poison = crash_worker.apply_async(args=["boom", str(out)], priority=5)
    with running_worker(tmp_path) as worker:
        job = wait_for(lambda: finished(poison.id), timeout=90, message="the poison job to be given up")
        wait_for(lambda: queue_depth(broker) == 0, timeout=30, message="the queue to drain")
        assert worker.proc.poll() is None  # the pool replaced each killed process
    assert lines(str(out)) == ["boom"] * 3
    assert job.state == JobState.FAILED
    assert job.error.startswith("WorkerLost: the run of this job was lost 3 times")
    assert TaskResult.objects.get(task_id=poison.id).status == "FAILURE"
