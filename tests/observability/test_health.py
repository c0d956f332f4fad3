"""Health checks against the real broker: message counts, unreachable brokers, what the report shows."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import celery
import pytest
from kombu import Connection

from queueprio import conf
from queueprio.observability import health
from queueprio.observability.depth import Queued
from tests.support.polling import wait_for
from tests.support.tasks import record
from tests.support.worker import running_worker

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
        "workers_checked_seconds_ago": None,
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


class CountedPings:
    """``responding_workers`` that counts its calls and takes ``seconds`` each, like a real ping."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls, self.seconds = 0, seconds

    def __call__(self, app: celery.Celery) -> list[str]:
        self.calls += 1
        time.sleep(self.seconds)
        return [f"w{self.calls}@h"]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, settings) -> CountedPings:
    settings.QUEUEPRIO_HEALTH_CACHE_SECONDS = 0.5
    pings = CountedPings(seconds=0.2)
    monkeypatch.setattr(health, "responding_workers", pings)
    return pings


def test_ping_cache__one_ping_per_interval_not_per_request(counted: CountedPings) -> None:
    cache, app = health.PingCache(), celery.current_app
    # The first request pings; the next ones within the interval reuse its answer
    assert cache.workers(app)[0] == ["w1@h"]
    started = time.monotonic()
    for _ in range(20):
        workers, age = cache.workers(app)
        assert workers == ["w1@h"]
        assert age < 0.5
    assert counted.calls == 1
    assert time.monotonic() - started < 0.2  # none of them waited for a ping


def test_ping_cache__a_stale_answer_is_served_at_once_and_refreshed_in_the_background(
    counted: CountedPings,
) -> None:
    cache, app = health.PingCache(), celery.current_app
    cache.workers(app)
    time.sleep(0.6)  # the answer is now stale (past 0.5 s), not too old (under 1.5 s)
    started = time.monotonic()
    workers, age = cache.workers(app)
    # The request got the old answer without waiting for the new ping
    assert (workers, time.monotonic() - started < 0.1, age >= 0.5) == (["w1@h"], True, True)
    # And one background ping brings the fresh one
    wait_for(lambda: cache.workers(app)[0] == ["w2@h"], timeout=5, message="the background ping")
    assert counted.calls == 2


def test_ping_cache__concurrent_first_requests_share_one_ping(counted: CountedPings) -> None:
    cache, app = health.PingCache(), celery.current_app
    answers: list[list[str]] = []
    threads = [threading.Thread(target=lambda: answers.append(cache.workers(app)[0])) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert answers == [["w1@h"]] * 8
    assert counted.calls == 1


def test_ping_cache__a_too_old_answer_is_pinged_again_before_answering(counted: CountedPings) -> None:
    # The control for "stale": past three intervals the request waits for a fresh ping
    cache, app = health.PingCache(), celery.current_app
    cache.workers(app)
    time.sleep(1.6)
    assert cache.workers(app) == (["w2@h"], pytest.approx(0.0, abs=0.1))


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_health_endpoint__a_probe_every_request_pings_once_per_interval(
    tmp_path: Path, broker: Connection, client, monkeypatch: pytest.MonkeyPatch, settings
) -> None:
    settings.QUEUEPRIO_HEALTH_CACHE_SECONDS = 30
    real = health.responding_workers
    calls: list[float] = []

    def counting(app: celery.Celery) -> list[str]:
        calls.append(time.monotonic())
        return real(app)

    monkeypatch.setattr(health, "responding_workers", counting)
    with running_worker(tmp_path, concurrency=1) as worker:
        wait_for(worker.answers_ping, timeout=30, message="the worker to answer a ping")
        # The first probe pays for the ping: a ping waits out its whole timeout
        started = time.monotonic()
        assert client.get("/queueprio/health/").status_code == 200
        first = time.monotonic() - started
        # The next ten don't
        started = time.monotonic()
        for _ in range(10):
            response = client.get("/queueprio/health/")
            assert response.status_code == 200
            assert response.json()["checks"]["workers"] == 1
        rest = (time.monotonic() - started) / 10
    assert len(calls) == 1
    assert first >= conf.settings.HEALTH_PING_TIMEOUT
    assert rest < 0.25, f"{rest:.3f}s per probe"


def test_ping_cache__a_background_ping_started_before_clear_is_not_kept(counted: CountedPings) -> None:
    cache, app = health.PingCache(), celery.current_app
    cache.workers(app)
    time.sleep(0.6)
    cache.workers(app)  # stale: a background ping starts (0.2 s)
    cache.clear()
    time.sleep(0.5)  # it has finished by now
    assert cache._answers == {}
    wait_for(lambda: counted.calls == 2, timeout=5, message="the background ping to have run")
