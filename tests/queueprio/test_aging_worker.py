"""Aging with real workers: nothing starves, and every job runs exactly once however many copies it has."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from kombu import Connection

from queueprio.maintenance.aging import sweep
from queueprio.models import Job, JobState
from tests.conftest import queue_depth
from tests.support.polling import lines, wait_for
from tests.support.tasks import block_until, record
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

THRESHOLD = 0.5
INTERVAL = 0.5
#: What docs/aging.md derives: 9 steps of one threshold, plus one sweep interval, plus slack
#: for the job in hand to finish and the new copy to be delivered.
BOUND = (10 - 1) * THRESHOLD + INTERVAL + 2.0


@contextmanager
def background(loop: callable, *, every: float) -> Iterator[None]:  # type: ignore[valid-type]
    """Run ``loop()`` every ``every`` seconds in a thread (with its own DB connection) until the block ends."""
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.is_set():
                loop()
                stop.wait(every)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def starvation_run(tmp_path: Path, settings, *, aging: bool, timeout: float) -> float | None:
    """A saturated worker, a stream of priority-1 jobs, one priority-10 job: seconds until it starts."""
    settings.QUEUEPRIO_AGING_ENABLED = aging
    settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = THRESHOLD
    settings.QUEUEPRIO_AGING_MAX_BOOST = 9  # let it climb all the way; the default cap is 4
    out = str(tmp_path / "started.txt")
    seq = iter(range(1_000_000))

    def feed() -> None:
        # Keep the worker saturated: always a few urgent jobs (50 ms each) waiting, topped up
        # every 20 ms. Not a growing backlog: within one level delivery is FIFO, so an aged job
        # that reaches 1 still waits for the urgent jobs queued before it, however many.
        waiting = Job.objects.filter(state=JobState.QUEUED, requested_priority=1).count()
        for _ in range(max(0, 3 - waiting)):
            record.apply_async(args=[f"urgent:{next(seq)}", out, 0.05], priority=1)

    with running_worker(tmp_path, concurrency=1):
        feed()
        record.apply_async(args=["starved", out], priority=10)
        submitted = time.monotonic()
        with background(feed, every=0.02), background(sweep, every=INTERVAL):
            try:
                wait_for(lambda: "starved" in lines(out), timeout=timeout, interval=0.05)
            except AssertionError:
                return None
            return time.monotonic() - submitted


def test_aging__a_priority_10_job_starts_within_the_bound_under_a_stream(tmp_path: Path, broker: Connection, settings):
    waited = starvation_run(tmp_path, settings, aging=True, timeout=BOUND)
    assert waited is not None, f"the priority-10 job did not start within {BOUND}s"
    assert lines(str(tmp_path / "started.txt")).index("starved") > 20  # the stream really was running
    job = Job.objects.get(args__0="starved")
    assert job.effective_priority < 10
    assert job.aging_steps.count() >= 1


def test_aging__control_without_aging_the_job_starves(tmp_path: Path, broker: Connection, settings):
    waited = starvation_run(tmp_path, settings, aging=False, timeout=3 * BOUND)
    assert waited is None, f"without aging the priority-10 job still started after {waited:.1f}s"


def age(task_id: str, times: int, settings) -> None:
    """Make the job due and sweep, ``times`` times: each sweep publishes one more copy."""
    settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = 1
    for step in range(1, times + 1):
        past = timezone.now() - timedelta(seconds=step + 0.5)
        Job.objects.filter(task_id=task_id).update(queued_at=past, aging_since=past, next_aging_at=timezone.now())
        assert sweep().aged == 1


def test_aged_job__runs_exactly_once_and_stale_copies_are_dropped(tmp_path: Path, broker: Connection, settings):
    out = tmp_path / "runs.txt"
    result = record.apply_async(args=["once", str(out)], priority=9)
    age(result.id, 2, settings)
    assert queue_depth(broker) == 3  # generations 1, 2 and 3 of the same job

    with running_worker(tmp_path, concurrency=2):
        wait_for(lambda: queue_depth(broker) == 0, timeout=30, message="the queue to drain")
        wait_for(lambda: Job.objects.get(task_id=result.id).state == JobState.SUCCEEDED, timeout=30)
    assert lines(str(out)) == ["once"]  # side effects, not ledger rows
    assert Job.objects.get(task_id=result.id).claimed_generation == 3  # the newest, most urgent copy


def test_claiming_copy__redelivered_after_sigkill_runs_to_completion_once(tmp_path: Path, broker: Connection, settings):
    out, flag = tmp_path / "runs.txt", tmp_path / "release"
    result = block_until.apply_async(args=["job", str(out), str(flag)], priority=5)
    age(result.id, 1, settings)  # a stale copy (generation 1) waits behind the claiming one

    with running_worker(tmp_path) as worker:
        wait_for(lambda: lines(str(out)) == ["job"], timeout=30, message="the first run to start")
        worker.kill()  # SIGKILL, mid-run: the message was not acked
    flag.touch()
    with running_worker(tmp_path):
        wait_for(lambda: Job.objects.get(task_id=result.id).state == JobState.SUCCEEDED, timeout=60)
        wait_for(lambda: queue_depth(broker) == 0, timeout=30, message="the stale copy to be dropped")
    assert lines(str(out)) == ["job", "job", "done:job"]  # killed once, completed once


def test_lost_message__is_republished_by_the_sweep_and_runs(tmp_path: Path, broker: Connection, settings):
    out = tmp_path / "runs.txt"
    result = record.apply_async(args=["lost", str(out)], priority=1)  # can't age: only recovery helps
    broker.default_channel.queue_purge(settings.QUEUEPRIO_QUEUE)  # the broker lost it
    settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = 1
    past = timezone.now() - timedelta(seconds=2)
    Job.objects.filter(task_id=result.id).update(published_at=past, next_aging_at=timezone.now())

    assert sweep().recovered == 1
    with running_worker(tmp_path):
        wait_for(lambda: Job.objects.get(task_id=result.id).state == JobState.SUCCEEDED, timeout=30)
    assert lines(str(out)) == ["lost"]


def test_stale_copies__leave_the_stored_result_alone(tmp_path: Path, broker: Connection, settings):
    from django_celery_results.models import TaskResult

    out = tmp_path / "runs.txt"
    # Priority 9 aged twice: copy 3 (priority 7) runs first, copies 1 and 2 arrive after it finished.
    result = record.apply_async(args=["once", str(out)], priority=9)
    age(result.id, 2, settings)

    with running_worker(tmp_path, concurrency=1):
        wait_for(lambda: queue_depth(broker) == 0, timeout=30, message="the queue to drain")
        wait_for(lambda: Job.objects.get(task_id=result.id).state == JobState.SUCCEEDED, timeout=30)
    stored = TaskResult.objects.get(task_id=result.id)
    assert (stored.status, stored.date_started is not None) == ("SUCCESS", True)  # STARTED was tracked, then kept
    assert result.get(timeout=5) == "once"
