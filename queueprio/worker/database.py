"""Worker writes that wait out a database restart instead of losing what they record.

A PostgreSQL restart (a failover, an upgrade, a crash) cuts every session and refuses new ones
for seconds. Without this, a copy whose claim failed was acknowledged and the job waited for the
aging sweep's recovery (minutes), and a run whose finish failed after its body had run was left
``started`` with a lapsing lease, so the lease recovery ran it again: a second completion.

:func:`retrying` runs a worker write again on ``OperationalError`` / ``InterfaceError`` when the
connection is gone or unusable (a statement refused on a working connection, a missing column or
SQLite's lock after its own busy timeout, is raised at once), after dropping the broken
connection, with exponential backoff (0.1 s doubling to 5 s) for up to
``QUEUEPRIO_DATABASE_RETRY_SECONDS`` (60; 0 switches it off). Each write it wraps is a whole
transaction that is safe to run again: the claim (with the ``STARTED`` result it writes), and the
finish (with the result it writes). Inside an enclosing transaction nothing is retried.
tests/machines/test_database_restart.py restarts PostgreSQL under load, with the control at 0.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connections

from ..conf import settings

logger = logging.getLogger("queueprio")

T = TypeVar("T")

FIRST_DELAY = 0.1
MAX_DELAY = 5.0


def retrying(write: Callable[[], T], *, what: str, using: str = "default") -> T:
    """``write()``, run again while the database is unreachable, up to the configured seconds."""
    limit = float(settings.DATABASE_RETRY_SECONDS)
    deadline = time.monotonic() + limit
    delay = FIRST_DELAY
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError) as exc:
            connection = connections[using]
            if limit <= 0 or connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            if not _away(connection):
                raise  # the statement is wrong (a missing column, say), not the database away
            logger.warning("database unavailable during %s, retrying in %.1fs: %s", what, delay, str(exc).strip()[:200])
            connection.close()  # broken: the next attempt connects afresh
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)


def _away(connection: Any) -> bool:
    """After an ``OperationalError``: is the database unreachable (retry) rather than the statement
    refused on a working connection (raise at once: retrying can't help)?"""
    if connection.connection is None:
        return True  # it could not connect
    try:
        return not connection.is_usable()
    except Exception:
        return True
