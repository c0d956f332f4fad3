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
        if cap is not None:
            # the second process's bulk copy met the limit: its job waits in the ledger, held
            wait_for(lambda: Job.objects.filter(state=JobState.HELD).exists(), timeout=30, message="a held job")
        urgent = slow.apply_async(("urgent", out, 0.1), priority=1)
        job = wait_for(lambda: Job.objects.filter(task_id=urgent.id, state=JobState.SUCCEEDED).first(), timeout=60)
        wait_for(lambda: lines(out).count("done urgent") == 1, timeout=30)
    assert job.started_at is not None
    return (job.started_at - job.queued_at).total_seconds(), most_running_at_once(out, "bulk")


def test_running_limit__bulk_capped_the_urgent_job_starts_at_once(tmp_path: Path, broker: Connection) -> None:
    waited, bulk_at_once = urgent_wait(tmp_path, str(tmp_path / "out.txt"), cap=1)
    assert bulk_at_once == 1
    assert waited < 1.0, waited  # a process was free: no bulk job to wait for


def test_running_limit__held_jobs_all_run_one_at_a_time_most_urgent_first(tmp_path: Path, broker: Connection) -> None:
    out = str(tmp_path / "out.txt")
    Band.objects.filter(name="background").update(max_running=1)
    results = [slow.apply_async((f"p{p}", out, 1.0), priority=p) for p in (6, 7, 8, 9)]
    last = slow.apply_async(("p10", out, 1.0), priority=10, idempotency_key="last")
    with running_worker(tmp_path, concurrency=2):
        # Once the least urgent job is held (its band runs one job at a time), a duplicate raises it
        wait_for(
            lambda: Job.objects.filter(task_id=last.id, state=JobState.HELD).exists(), timeout=30, message="p10 held"
        )
        assert slow.apply_async(("p10", out, 1.0), priority=6, idempotency_key="last").id == last.id
        ids = [r.id for r in [*results, last]]
        wait_for(
            lambda: Job.objects.filter(task_id__in=ids, state=JobState.SUCCEEDED).count() == 5,
            timeout=90,
            message="every held job to be released and run",
        )
    # Without the release, held jobs would stay held for ever; with it, one at a time, and the
    # raised job (now priority 6) went next, before the ones held at 7-9 (the broker's order was 6..10)
    assert most_running_at_once(out, "p") == 1
    starts = [line.split()[1] for line in lines(out) if line.startswith("start ")]
    assert starts[1] == "p10", starts


def test_control__no_cap_the_urgent_job_waits_for_a_bulk_job(tmp_path: Path, broker: Connection) -> None:
    waited, bulk_at_once = urgent_wait(tmp_path, str(tmp_path / "out.txt"), cap=None)
    assert bulk_at_once == 2
    assert waited >= 1.0, waited  # both processes held bulk jobs of 1.5 s
