"""The many-machine lab: two test hosts (network namespaces), a 2-node RabbitMQ cluster and a
PostgreSQL cluster of the fixture's own, the workers inside the hosts.

These tests need root (namespaces) and PostgreSQL: ``make test-machines`` runs them
(``-m machines``); the plain ``make test`` deselects them (pyproject's ``addopts``). Without
root or ``ip netns`` they skip with the reason, except in CI, where they fail.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from kombu import Connection

from tests.support.hosts import Host, network_hosts, skip_or_fail
from tests.support.pg_cluster import PgCluster
from tests.support.pg_cluster import throwaway_cluster as pg_cluster
from tests.support.polling import wait_for
from tests.support.rabbit_cluster import ClusterNode
from tests.support.rabbit_cluster import throwaway_cluster as rabbit_cluster
from tests.support.rabbit_node import celery_broker
from tests.support.worker import ROOT, Worker, worker_env


@dataclass
class Lab:
    hosts: list[Host]
    pg: PgCluster
    nodes: list[ClusterNode]

    @property
    def queue_node(self) -> ClusterNode:
        """The node the priority queues are declared on (a classic queue lives on one node)."""
        return self.nodes[0]

    @property
    def web_url(self) -> str:
        """Where this process (the "web" process) publishes: the node that does not hold the queue."""
        return self.nodes[-1].url_at("127.0.0.1")

    def broker_urls(self, host: Host) -> str:
        """A worker's failover list: its own node first (host n, node n), then the others."""
        first = self.nodes[self.hosts.index(host) % len(self.nodes)]
        order = [first, *(n for n in self.nodes if n is not first)]
        return ";".join(node.url_at(host.gateway) for node in order)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    db = django_settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        skip_or_fail("the many-machine tests run on PostgreSQL: use `make test-machines` (it sets DATABASE_URL)")
    with ExitStack() as stack:
        hosts = stack.enter_context(network_hosts(2))
        gateways = [host.gateway for host in hosts]
        pg = stack.enter_context(pg_cluster(gateways))
        nodes = stack.enter_context(rabbit_cluster(vhost=django_settings.TEST_VHOST, listen=gateways))
        yield Lab(hosts, pg, nodes)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(lab: Lab) -> None:
    """pytest-django creates the test database on the lab's PostgreSQL (this process reaches it on loopback)."""
    db = django_settings.DATABASES["default"]
    db.update(HOST="127.0.0.1", PORT=lab.pg.port, USER="postgres", PASSWORD="", CONN_MAX_AGE=0)


@pytest.fixture
def machines(lab: Lab) -> Iterator[Lab]:
    """Per test: the priority queues declared on the queue node and empty, this process publishing
    through the other node, every host's link up."""
    for host in lab.hosts:
        host.restore()
    declare_queues(lab, purge=True)
    with celery_broker(lab.web_url):
        yield lab
    for host in lab.hosts:
        host.restore()


def declare_queues(lab: Lab, *, purge: bool = False) -> None:
    """The priority queues, declared through the queue node (so they live on it)."""
    from project.celery import app

    with Connection(lab.queue_node.url_at("127.0.0.1")) as conn:
        for queue in app.conf.task_queues:
            bound = queue.bind(conn.default_channel)
            bound.declare()
            if purge:
                bound.purge()


def queue_depth(lab: Lab) -> int:
    from queueprio.celery import priority_queue

    with Connection(lab.queue_node.url_at("127.0.0.1")) as conn:
        queue = priority_queue(django_settings.QUEUEPRIO_QUEUE).bind(conn.default_channel)
        return int(queue.queue_declare(passive=True)[1])


@contextmanager
def host_worker(
    lab: Lab, host: Host, log_dir: Path, *, concurrency: int = 2, env: dict[str, str] | None = None
) -> Iterator[Worker]:
    """``celery worker`` inside ``host``: broker and database at the host's gateway address."""
    import subprocess

    name = f"w{uuid.uuid4().hex[:6]}@{host.name}"
    log = log_dir / f"{host.name}-{name.split('@')[0]}.log"
    args = host.command(
        sys.executable,
        "-m",
        "celery",
        "-A",
        "project",
        "worker",
        "-n",
        name,
        "-c",
        str(concurrency),
        "-P",
        "prefork",
        "-l",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    )
    # The worker's settings add the "test_" prefix themselves (tests/settings.py), as for any test worker.
    db_name = django_settings.DATABASES["default"]["NAME"].removeprefix("test_")
    environment = worker_env(
        DJANGO_SETTINGS_MODULE="tests.machines.worker_settings",
        DATABASE_URL=lab.pg.url(host.gateway, db_name),
        QUEUEPRIO_MACHINES_BROKER=lab.broker_urls(host),
        **(env or {}),
    )
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = Worker(proc, log, name)
    try:
        wait_for(worker.is_ready, timeout=90, interval=0.2, message=f"worker {name} to be ready")
        yield worker
    finally:
        worker.stop(timeout=30)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A failed test shows the end of every worker log it left in its tmp_path."""
    report = yield
    if report.failed:
        funcargs: dict[str, Any] = getattr(item, "funcargs", {})
        tmp = funcargs.get("tmp_path")
        if isinstance(tmp, Path):
            for log in sorted(tmp.glob("*.log")):
                report.sections.append(
                    (f"worker log {log.name} (last 4000 chars)", log.read_text(errors="replace")[-4000:])
                )
    return report
