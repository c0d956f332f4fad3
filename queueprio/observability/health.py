"""Is the system able to run jobs right now? Broker, database and workers, each checked briefly.

What the report holds is safe to show to a load balancer or a status page: booleans,
counts and ages. Never a URL, a host name, an exception message (they can carry both),
a path or a setting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import celery
from amqp.exceptions import NotFound
from django.db import DatabaseError, connection

from ..broker.queues import priority_queue
from ..conf import settings
from ..threads import start_quiet_thread
from . import depth

logger = logging.getLogger("queueprio")

#: Seconds the broker check may take to connect; with the ping's
#: ``QUEUEPRIO_HEALTH_PING_TIMEOUT`` a probe answers within about two seconds.
CONNECT_TIMEOUT = 1.0


@dataclass
class Health:
    broker: bool
    database: bool
    workers: list[str] = field(default_factory=list)
    #: How old the worker ping's answer is (seconds; it is reused for ``QUEUEPRIO_HEALTH_CACHE_SECONDS``).
    workers_age: float | None = None
    broker_messages: int | None = None
    by_priority: list[depth.Queued] = field(default_factory=list)
    by_band: list[depth.Queued] = field(default_factory=list)
    #: The broker answers but a priority queue's node is down (a cluster node failed).
    queue_down: bool = False

    @property
    def healthy(self) -> bool:
        return self.broker and self.database and bool(self.workers)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        """The public report: no worker names (host names), only how many answered."""
        return {
            "healthy": self.healthy,
            "checks": {"broker": self.broker, "database": self.database, "workers": len(self.workers)},
            "workers_checked_seconds_ago": _rounded(self.workers_age),
            "broker_messages": self.broker_messages,
            "queued": {q.name: q.queued for q in self.by_priority},
            "oldest_wait_seconds": {q.name: _rounded(q.oldest_wait(now)) for q in self.by_band},
            "queued_by_band": {q.name: q.queued for q in self.by_band},
        } | ({} if self.healthy else {"reasons": self.reasons()})

    def reasons(self) -> list[str]:
        """Why it is unhealthy, in words safe to show (no names, addresses or messages)."""
        reasons = []
        if self.queue_down:
            reasons.append("broker: a priority queue is unavailable (the RabbitMQ node holding it is down)")
        elif not self.broker:
            reasons.append("broker: unreachable")
        if not self.database:
            reasons.append("database: unreachable")
        if self.broker and not self.workers:
            reasons.append("workers: none answered the ping")
        return reasons


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def queue_names() -> list[str]:
    names = [settings.QUEUE]
    if settings.LANE_MAX_PRIORITY is not None:
        names.append(settings.LANE_QUEUE)
    return names


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception as exc:
        logger.warning("health: database unreachable error=%s", type(exc).__name__)
        return False


class QueueDown(Exception):
    """RabbitMQ knows the durable queue but the node holding it is down (``NOT_FOUND`` "home node
    ... is down or inaccessible"): not the same as a queue never declared."""


def broker_messages(app: celery.Celery, names: Iterable[str]) -> int | None:
    """Messages ready in our queues (passive declare: a missing queue is not created), or
    ``None`` when the broker can't be reached. Includes stale copies of aged jobs."""
    try:
        with app.connection_for_write(connect_timeout=CONNECT_TIMEOUT) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=CONNECT_TIMEOUT)  # type: ignore[arg-type]  # kombu takes a float; its stub says int
            return sum(_ready(conn, name) for name in names)
    except QueueDown:
        raise
    except Exception as exc:
        logger.warning("health: broker check failed error=%s", type(exc).__name__)
        return None


def _ready(conn: Any, name: str) -> int:
    try:
        with conn.channel() as channel:
            declared: Any = priority_queue(name).bind(channel).queue_declare(passive=True)
            return int(declared[1])  # (name, messages, consumers); celery-types says str
    except NotFound as exc:
        if "down or inaccessible" in str(exc):  # a cluster node failed (tests/machines/test_broker_node.py)
            logger.warning("health: a priority queue's node is down")
            raise QueueDown from None
        return 0  # not declared yet: no worker has consumed from it, so nothing waits in it


def responding_workers(app: celery.Celery) -> list[str]:
    """Names of the workers that answered a ping within ``QUEUEPRIO_HEALTH_PING_TIMEOUT``."""
    try:
        replies = app.control.ping(timeout=settings.HEALTH_PING_TIMEOUT) or []
    except Exception as exc:
        logger.warning("health: worker ping failed error=%s", type(exc).__name__)
        return []
    return sorted(name for reply in replies for name in reply)


@dataclass(frozen=True)
class Ping:
    workers: list[str]
    at: float  # time.monotonic()


class PingCache:
    """The last worker ping's answer, per process and app, reused for ``QUEUEPRIO_HEALTH_CACHE_SECONDS``.

    A ping waits its whole timeout for replies (it can't know how many workers there are), so
    the health endpoint must not ping per request. Fresh answers are reused; a stale one (up to
    three intervals old) is served at once while one background thread pings again; with none
    (the first request) or a too old one the request pings, one at a time: concurrent requests
    wait for that ping and share its answer.
    """

    def __init__(self) -> None:
        self._answers: dict[int, Ping] = {}
        self._lock = threading.Lock()  # held while pinging: one ping at a time
        self._flags = threading.Lock()  # guards _refreshing only, never held across a ping
        self._refreshing: set[int] = set()
        #: Bumped by clear(): a background ping started before it doesn't store its answer after it.
        self._epoch = 0

    def clear(self) -> None:
        with self._flags:
            self._epoch += 1
            self._answers.clear()

    def workers(self, app: celery.Celery) -> tuple[list[str], float]:
        """The workers that answered, and how many seconds ago."""
        ttl = float(settings.HEALTH_CACHE_SECONDS)
        answer = self._answers.get(id(app))
        age = None if answer is None else time.monotonic() - answer.at
        if answer is not None and age is not None and age < ttl:
            return answer.workers, age
        if answer is not None and age is not None and age < 3 * ttl:
            self._refresh_in_background(app)
            return answer.workers, age
        with self._lock:
            answer = self._answers.get(id(app))
            if answer is None or time.monotonic() - answer.at >= ttl:  # nobody pinged while we waited
                answer = self._ping(app)
        return answer.workers, time.monotonic() - answer.at

    def _ping(self, app: celery.Celery, epoch: int | None = None) -> Ping:
        answer = Ping(responding_workers(app), time.monotonic())
        with self._flags:
            if epoch is None or epoch == self._epoch:
                self._answers[id(app)] = answer
        return answer

    def _refresh_in_background(self, app: celery.Celery) -> None:
        with self._flags:
            if id(app) in self._refreshing:
                return
            self._refreshing.add(id(app))
            epoch = self._epoch
        ttl = float(settings.HEALTH_CACHE_SECONDS)

        def refresh() -> None:
            try:
                with self._lock:
                    answer = self._answers.get(id(app))
                    if answer is None or time.monotonic() - answer.at >= ttl:  # no request pinged meanwhile
                        self._ping(app, epoch)
            finally:
                with self._flags:
                    self._refreshing.discard(id(app))

        start_quiet_thread(refresh, name="queueprio-health-ping")


pings = PingCache()


def check(now: datetime, app: celery.Celery | None = None) -> Health:
    app = app or celery.current_app
    try:
        messages, queue_down = broker_messages(app, queue_names()), False
    except QueueDown:
        messages, queue_down = None, True
    health = Health(
        broker=messages is not None, database=database_ok(), broker_messages=messages, queue_down=queue_down
    )
    if health.broker:
        health.workers, health.workers_age = pings.workers(app)
    if health.database:
        try:
            health.by_priority = depth.by_priority(now)
            health.by_band = depth.by_band(now)
        except DatabaseError as exc:  # reachable, but not usable (e.g. not migrated)
            logger.warning("health: ledger unreadable error=%s", type(exc).__name__)
            health.database = False
    return health
