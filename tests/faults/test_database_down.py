"""The database is locked or unreachable at submit time: a clear error, nothing published, then recovery.

SQLite: another connection holds ``BEGIN EXCLUSIVE`` longer than the busy timeout (lowered to
half a second for the test). PostgreSQL (when ``DATABASE_URL`` points at one): the connection
goes through a TCP relay the test cuts and restores.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import OperationalError, connection
from kombu import Connection

from queueprio.models import Job
from queueprio.submission.batch import submit_batch
from tests.conftest import queue_depth
from tests.support.tasks import record

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

#: However the database fails, the caller hears about it within this many seconds.
PROMPT = 10.0


@contextmanager
def connection_settings(**changes: Any) -> Iterator[None]:
    """Reconnect with ``changes`` to the default connection's settings (``OPTIONS`` merged), then back."""
    saved = {key: connection.settings_dict.get(key) for key in changes}
    saved_options = dict(connection.settings_dict["OPTIONS"])
    connection.close()
    options = changes.pop("OPTIONS", {})
    connection.settings_dict.update(changes)
    connection.settings_dict["OPTIONS"].update(options)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)
        connection.settings_dict["OPTIONS"] = saved_options


def assert_fails_promptly(submit: Any, match: str | None = None) -> None:
    began = time.monotonic()
    with pytest.raises(OperationalError, match=match):
        submit()
    assert time.monotonic() - began < PROMPT


def submit_one(tmp_path: Any) -> Any:
    return record.apply_async(args=["x", str(tmp_path / "o")], priority=3)


def submit_some(tmp_path: Any) -> Any:
    return submit_batch(record, [([f"b{i}", str(tmp_path / "o")], {}) for i in range(3)], priority=7)


def test_sqlite_locked__clear_error_nothing_published_then_works(broker: Connection, tmp_path) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only: the database is not SQLite")
    locker = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    try:
        with connection_settings(OPTIONS={"timeout": 0.5}):
            locker.execute("BEGIN EXCLUSIVE")
            assert_fails_promptly(lambda: submit_one(tmp_path), "locked")
            assert_fails_promptly(lambda: submit_some(tmp_path), "locked")
            assert queue_depth(broker) == 0
            locker.execute("ROLLBACK")
            # The lock is gone: the same process submits again, no restart.
            one, some = submit_one(tmp_path), submit_some(tmp_path)
    finally:
        locker.close()
    assert queue_depth(broker) == 4
    assert set(Job.objects.values_list("task_id", flat=True)) == {one.id, *some.ids}


class Relay:
    """A TCP relay to the database server that the test can cut (refuse and drop) and restore."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()  # the server is "down": the connection is dropped at once
                continue
            server = socket.create_connection(self.target)
            self.pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        Relay._drop(src, dst)

    @staticmethod
    def _drop(*socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self) -> None:
        self.up = False
        for pair in self.pairs:
            self._drop(*pair)
        self.pairs.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.mark.postgres
def test_postgres_unreachable__clear_error_nothing_published_then_works(broker: Connection, tmp_path) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: DATABASE_URL does not point at PostgreSQL")
    relay = Relay(connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"] or 5432))
    try:
        with connection_settings(HOST="127.0.0.1", PORT=str(relay.port), OPTIONS={"connect_timeout": 2}):
            submit_one(tmp_path)  # connected through the relay
            relay.cut()  # the established connection dies, new ones are dropped
            assert_fails_promptly(lambda: submit_one(tmp_path))
            assert_fails_promptly(lambda: submit_some(tmp_path))
            assert queue_depth(broker) == 1
            relay.restore()
            one, some = submit_one(tmp_path), submit_some(tmp_path)
    finally:
        relay.close()
    assert queue_depth(broker) == 5
    assert {one.id, *some.ids} <= set(Job.objects.values_list("task_id", flat=True))
