"""Shared fixtures: an isolated RabbitMQ vhost per run, clean queues per test, a converters root."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from kombu import Connection

from queueprio.celery import priority_queue
from tests.support.worker import Worker, running_worker


def rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise pytest.UsageError("rabbitmqctl not found: the broker tests need a local RabbitMQ (see README).")
    result = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr or result.stdout}")


@pytest.fixture(autouse=True)
def fresh_health_pings() -> Iterator[None]:
    """The health endpoint reuses a worker ping's answer for a few seconds: not across tests."""
    from queueprio.observability.health import pings

    pings.clear()
    yield
    pings.clear()


@pytest.fixture(scope="session")
def broker_vhost() -> Iterator[str]:
    """This run's own vhost: created before the first broker test, deleted after the last."""
    vhost = django_settings.TEST_VHOST
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield vhost
    rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def broker(broker_vhost: str) -> Iterator[Connection]:
    """A connection to the test vhost with the priority queues declared and empty."""
    from project.celery import app

    with Connection(django_settings.CELERY_BROKER_URL) as conn:
        channel = conn.default_channel
        # The queues queueprio.celery.configure() declared on the project's app.
        for queue in app.conf.task_queues:
            bound = queue.bind(channel)
            bound.declare()
            bound.purge()
        yield conn


def queue_depth(conn: Connection, name: str | None = None) -> int:
    queue = priority_queue(name or django_settings.QUEUEPRIO_QUEUE).bind(conn.default_channel)
    _, count, _ = queue.queue_declare(passive=True)
    return count


@pytest.fixture
def files_root(tmp_path: Path, settings: object) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    settings.CONVERTERS_ROOT = str(root)  # type: ignore[attr-defined]
    return root


# --- converters in a real worker: one root and one worker per test module ---------------


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("files")


@pytest.fixture
def root(shared_root: Path, settings: object) -> Path:
    """The module's converters root, also set in this process's settings."""
    settings.CONVERTERS_ROOT = str(shared_root)  # type: ignore[attr-defined]
    return shared_root


@pytest.fixture(scope="module")
def worker(shared_root: Path, broker_vhost: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One real worker for the module, confined to the module's converters root."""
    with running_worker(tmp_path_factory.mktemp("logs"), env={"CONVERTERS_ROOT": str(shared_root)}) as started:
        yield started


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A failed test that used worker subprocesses shows the end of their logs.

    A broker test that times out is otherwise blind: what the worker did with the message
    (dropped it, crashed, never got it) is only in the worker's own log."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for name, value in funcargs.items():
            if isinstance(value, Worker):
                report.sections.append((f"worker log ({name}, last 6000 chars)", value.output()[-6000:]))
    return report
