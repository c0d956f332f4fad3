"""A worker publishes its own events without waiting for publisher confirms (``worker.events``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from celery.events import EventDispatcher
from django.conf import settings
from kombu import Connection

from tests.support.ledger import finished
from tests.support.polling import wait_for
from tests.support.tasks import record
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def confirming_channels(vhost: str, pid: int | None = None) -> list[str]:
    """RabbitMQ's own list of the vhost's channels in confirm mode (``rabbitmqctl list_channels``),
    only those of process ``pid``'s connections if given."""
    ctl = shutil.which("rabbitmqctl") or "rabbitmqctl"
    out = subprocess.run([ctl, "-q", "list_channels", "vhost", "confirm", "name"], capture_output=True, text=True)
    rows = [line.split("\t") for line in out.stdout.splitlines() if line.strip()]
    names = [row[2] for row in rows if len(row) == 3 and row[0] == vhost and row[1] == "true"]
    if pid is None:
        return names
    # A channel is named after its connection's client address: "127.0.0.1:PORT -> ...".
    ss = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True).stdout
    ports = {line.split()[2] for line in ss.splitlines() if f"pid={pid}," in line and len(line.split()) > 2}
    return [name for name in names if name.split(" ")[0] in ports]


def worker_channels_confirming(tmp_path: Path) -> list[str]:
    out = tmp_path / "out.txt"
    with running_worker(tmp_path) as worker:
        for label in ("one", "two"):
            result = record.apply_async(args=[label, str(out)])
            wait_for(lambda: finished(result.id), timeout=60, message="the job to finish")  # noqa: B023
        # The worker's main process publishes the events; the test's own channels confirm.
        return confirming_channels(settings.TEST_VHOST, worker.proc.pid)


def test_worker__events_do_not_wait_for_confirms(tmp_path: Path, broker: Connection) -> None:
    assert worker_channels_confirming(tmp_path) == []


def test_control__a_confirming_event_channel_shows_in_the_list(broker: Connection) -> None:
    # What the worker's event dispatcher was before: Celery's own, on a confirming connection.
    with Connection(settings.CELERY_BROKER_URL, transport_options={"confirm_publish": True}) as conn:
        dispatcher = EventDispatcher(conn, hostname="control@test", enabled=True)
        dispatcher.send("worker-heartbeat")
        assert wait_for(lambda: confirming_channels(settings.TEST_VHOST), timeout=30, message="the channel")
        dispatcher.close()
