"""The broker itself delivers urgent work first: real RabbitMQ, real worker processes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from kombu import Connection

from tests.support.polling import lines, wait_for
from tests.support.tasks import block_until, record
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def shuffled_backlog(out: Path, count_per_level: int = 5) -> list[tuple[int, int]]:
    """Publish a shuffled backlog while no worker runs; return (priority, seq) in submission order."""
    priorities = [p for p in range(1, 11) for _ in range(count_per_level)]
    random.Random(20261122).shuffle(priorities)
    for seq, priority in enumerate(priorities):
        record.apply_async(args=[f"{priority}:{seq}", str(out)], priority=priority)
    return list(zip(priorities, range(len(priorities)), strict=True))


def run_backlog(tmp_path: Path, out: Path, expected: int) -> list[tuple[int, int]]:
    with running_worker(tmp_path, concurrency=1):
        wait_for(lambda: len(lines(str(out))) >= expected, timeout=120, message=f"{expected} jobs to run")
    return [tuple(map(int, line.split(":"))) for line in lines(str(out))]  # type: ignore[misc]


def test_backlog__runs_exactly_in_priority_then_submission_order(tmp_path: Path, broker: Connection) -> None:
    # Given a backlog of 50 jobs, 5 per level, shuffled, published while no worker runs
    out = tmp_path / "order.txt"
    submitted = shuffled_backlog(out)
    # When one worker process drains it
    ran = run_backlog(tmp_path, out, len(submitted))
    # Then the order is exactly (priority, submission order): urgent first, FIFO within a level
    assert ran == sorted(submitted)


def test_backlog__without_queueprio_runs_in_submission_order(tmp_path: Path, broker: Connection, settings) -> None:
    # Control: the rollback switch publishes everything at one AMQP priority.
    settings.QUEUEPRIO_ENABLED = False
    out = tmp_path / "order.txt"
    submitted = shuffled_backlog(out)
    ran = run_backlog(tmp_path, out, len(submitted))
    assert ran == submitted
    assert ran != sorted(submitted)


def test_urgent_job__overtakes_a_bulk_backlog(tmp_path: Path, broker: Connection) -> None:
    # Given a worker busy on a 500-job bulk backlog
    out = tmp_path / "started.txt"
    for seq in range(500):
        record.apply_async(args=[f"bulk:{seq}", str(out), 0.01], priority=10)
    concurrency = 2
    with running_worker(tmp_path, concurrency=concurrency):
        wait_for(lambda: len(lines(str(out))) >= 20, timeout=60, message="the backlog to be under way")
        # When one priority-1 job is submitted (it is in the broker once apply_async returns)
        record.apply_async(args=["urgent", str(out)], priority=1)
        started_before = len(lines(str(out)))
        wait_for(lambda: "urgent" in lines(str(out)), timeout=30, message="the urgent job to start")
    # Then at most `concurrency` bulk jobs (already handed to the pool) start before it
    started = lines(str(out))
    assert started.index("urgent") - started_before <= concurrency
    assert len(started) < 500  # and it did not simply wait for the backlog to finish


def test_urgent_job__waits_for_a_busy_pool_without_the_lane(tmp_path: Path, broker: Connection) -> None:
    # What priority can't do on one queue: with every process busy, even priority 1 waits.
    out, flag = tmp_path / "started.txt", tmp_path / "release"
    with running_worker(tmp_path, concurrency=1):
        block_until.apply_async(args=["long", str(out), str(flag)], priority=10)
        wait_for(lambda: "long" in lines(str(out)), timeout=30, message="the long job to start")
        record.apply_async(args=["urgent", str(out)], priority=1)
        with pytest.raises(AssertionError, match="timed out"):
            wait_for(lambda: "urgent" in lines(str(out)), timeout=2)
        flag.touch()
        wait_for(lambda: "urgent" in lines(str(out)), timeout=30, message="the urgent job after release")
