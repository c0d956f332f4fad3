"""Health checks against the real broker: message counts, unreachable brokers, what the report shows."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import celery
import pytest
from kombu import Connection

from queueprio.observability import health
from queueprio.observability.depth import Queued
from tests.support.tasks import record

T = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_health__healthy_needs_broker_database_and_a_worker() -> None:
    assert health.Health(broker=True, database=True, workers=["w1@h"]).healthy
    assert not health.Health(broker=True, database=True, workers=[]).healthy
    assert not health.Health(broker=False, database=True, workers=["w1@h"]).healthy
    assert not health.Health(broker=True, database=False, workers=["w1@h"]).healthy


def test_health__report_counts_workers_without_naming_them() -> None:
    report = health.Health(
        broker=True,
        database=True,
        workers=["w1@secret-host"],
        broker_messages=4,
        by_priority=[Queued("1", 2, T)],
        by_band=[Queued("urgent", 2, T)],
    ).as_dict(T.replace(minute=1))
    assert report == {
        "healthy": True,
        "checks": {"broker": True, "database": True, "workers": 1},
        "broker_messages": 4,
        "queued": {"1": 2},
        "oldest_wait_seconds": {"urgent": 60.0},
        "queued_by_band": {"urgent": 2},
    }


def test_broker_messages__unreachable_broker_is_none_and_quick() -> None:
    app = celery.Celery(broker="amqp://guest:guest@127.0.0.1:1//", set_as_current=False)
    started = time.monotonic()
    assert health.broker_messages(app, ["queueprio"]) is None
    assert time.monotonic() - started < 10


@pytest.mark.django_db
def test_check__broker_down_skips_the_worker_ping_but_still_reads_the_ledger() -> None:
    app = celery.Celery(broker="amqp://guest:guest@127.0.0.1:1//", set_as_current=False)
    started = time.monotonic()
    report = health.check(T, app)
    assert (report.broker, report.database, report.workers, report.healthy) == (False, True, [], False)
    assert len(report.by_priority) == 10
    assert time.monotonic() - started < 5


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_broker_messages__counts_ready_messages_in_our_queues(tmp_path, broker: Connection) -> None:
    for label in ("a", "b", "c"):
        record.apply_async(args=[label, str(tmp_path / "out.txt")], priority=5)
    assert health.broker_messages(celery.current_app, health.queue_names()) == 3


@pytest.mark.broker
def test_broker_messages__an_undeclared_queue_counts_as_empty(broker: Connection) -> None:
    assert health.broker_messages(celery.current_app, ["queueprio.never-declared"]) == 0


@pytest.mark.django_db
def test_database_ok__true_with_a_working_connection() -> None:
    assert health.database_ok()
