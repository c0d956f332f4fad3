"""A band's running limit keeps bulk work from taking every worker process: the urgent band's
start latency stays bounded while a bulk backlog is capped; without the cap it waits for a bulk job."""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection

from queueprio.models import Band, Job, JobState
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import slow
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def most_running_at_once(out: str, prefix: str) -> int:
    running = most = 0
    for line in lines(out):
        kind, label = line.split()
        if label.startswith(prefix):
            running += 1 if kind == "start" else -1
            most = max(most, running)
    return most


def urgent_wait(tmp_path: Path, out: str, cap: int | None) -> tuple[float, int]:
    """Two processes busy with a bulk backlog (cap or not), then one urgent job: its wait, and the
    most bulk jobs that ever ran at once."""
    Band.objects.filter(name="background").update(max_running=cap)
    for i in range(8):
        slow.apply_async((f"bulk{i}", out, 1.5), priority=9)
    with running_worker(tmp_path, concurrency=2):
        wait_for(lambda: any(line.startswith("start bulk") for line in lines(out)), timeout=60)
        urgent = slow.apply_async(("urgent", out, 0.1), priority=1)
        job = wait_for(lambda: Job.objects.filter(task_id=urgent.id, state=JobState.SUCCEEDED).first(), timeout=60)
        wait_for(lambda: lines(out).count("done urgent") == 1, timeout=30)
    assert job.started_at is not None
    return (job.started_at - job.queued_at).total_seconds(), most_running_at_once(out, "bulk")


def test_running_limit__bulk_capped_the_urgent_job_starts_at_once(tmp_path: Path, broker: Connection) -> None:
    waited, bulk_at_once = urgent_wait(tmp_path, str(tmp_path / "out.txt"), cap=1)
    assert bulk_at_once == 1
    assert waited < 1.0, waited  # a process was free: no bulk job to wait for
    assert Job.objects.filter(state=JobState.HELD).exists() or Job.objects.filter(task_name="sem.slow").count() == 9


def test_control__no_cap_the_urgent_job_waits_for_a_bulk_job(tmp_path: Path, broker: Connection) -> None:
    waited, bulk_at_once = urgent_wait(tmp_path, str(tmp_path / "out.txt"), cap=None)
    assert bulk_at_once == 2
    assert waited >= 1.0, waited  # both processes held bulk jobs of 1.5 s
