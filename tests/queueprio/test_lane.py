"""The reserved lane for critical work, and the rollback switch, with real workers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from kombu import Connection

from queueprio.models import Job, JobState
from tests.conftest import queue_depth
from tests.support.ledger import finished
from tests.support.messages import drain
from tests.support.polling import lines, wait_for
from tests.support.tasks import block_until, record
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

LANE = django_settings.QUEUEPRIO_LANE_QUEUE
BOTH = f"{django_settings.QUEUEPRIO_QUEUE},{LANE}"


def occupy_both_general_processes(out: Path, flag: Path) -> None:
    """Start a long bulk job on each of the general worker's two processes; they end when ``flag`` exists."""
    for i in range(2):
        block_until.apply_async(args=[f"long{i}", str(out), str(flag)], priority=9)
    wait_for(lambda: {"long0", "long1"} <= set(lines(str(out))), timeout=30, message="both long jobs to start")


def finished_before(out: Path, label: str) -> list[str]:
    """The jobs that finished before ``label`` started (``block_until`` writes ``done:<label>``)."""
    seen = lines(str(out))
    return [line for line in seen[: seen.index(label)] if line.startswith("done:")]


def test_router__sends_urgent_jobs_to_the_lane_only_when_configured(broker: Connection, tmp_path, settings) -> None:
    out = str(tmp_path / "o")
    record.apply_async(args=["a", out], priority=2)
    assert queue_depth(broker, LANE) == 0
    settings.QUEUEPRIO_LANE_MAX_PRIORITY = 2
    urgent = record.apply_async(args=["b", out], priority=2)
    record.apply_async(args=["c", out], priority=3)
    assert [m["id"] for m in drain(broker, LANE)] == [urgent.id]
    assert queue_depth(broker) == 2


def test_lane__a_critical_job_starts_within_a_second_while_general_workers_are_busy(
    broker: Connection, tmp_path: Path, settings
) -> None:
    settings.QUEUEPRIO_LANE_MAX_PRIORITY = 2
    out, flag = tmp_path / "started.txt", tmp_path / "release"
    with running_worker(tmp_path, queues=LANE):
        # Warm the lane worker up first, alone so that it takes the job: the second measured is
        # then the lane's, not a fresh process's first task (imports, its first database connection).
        warm = record.apply_async(args=["warm-up", str(out)], priority=1)
        wait_for(lambda: finished(warm.id), timeout=30, message="the warm-up job")
        with running_worker(tmp_path, concurrency=2, queues=BOTH):
            occupy_both_general_processes(out, flag)
            submitted = time.monotonic()
            record.apply_async(args=["critical", str(out)], priority=1)
            wait_for(lambda: "critical" in lines(str(out)), timeout=10, interval=0.01, message="the critical job")
            started_after = time.monotonic() - submitted
            flag.touch()
    assert started_after < 1.0
    assert not finished_before(out, "critical")  # nothing finished first


def test_control__without_the_lane_the_critical_job_waits_for_a_bulk_job_to_finish(
    broker: Connection, tmp_path: Path, settings
) -> None:
    settings.QUEUEPRIO_LANE_MAX_PRIORITY = None  # no lane: one shared queue
    out, flag = tmp_path / "started.txt", tmp_path / "release"
    with running_worker(tmp_path, concurrency=2, queues=BOTH):
        occupy_both_general_processes(out, flag)
        critical = record.apply_async(args=["critical", str(out)], priority=1)
        flag.touch()  # only now can a process free up
        wait_for(lambda: finished(critical.id), timeout=30, message="the critical job")
    # The most urgent priority did not help: it started only once a bulk job had finished
    assert finished_before(out, "critical")


def test_rollback_switch__fifo_with_ledger_and_back_on_without_migration(
    broker: Connection, tmp_path, settings
) -> None:
    out = tmp_path / "order.txt"
    settings.QUEUEPRIO_ENABLED = False
    off = [record.apply_async(args=[f"off{p}", str(out)], priority=p) for p in (9, 1, 5)]
    settings.QUEUEPRIO_ENABLED = True
    on = [record.apply_async(args=[f"on{p}", str(out)], priority=p) for p in (9, 1)]
    priorities = {m["id"]: m["priority"] for m in drain(broker)}
    assert [priorities[r.id] for r in off] == [1, 1, 1]  # one AMQP priority: plain FIFO
    assert [priorities[r.id] for r in on] == [2, 10]  # back on at once, same schema
    assert Job.objects.filter(task_id__in=[r.id for r in off], state=JobState.QUEUED).count() == 3
