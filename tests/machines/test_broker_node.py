"""Scenario 3, the RabbitMQ node holding the priority queue fails, in a 2-node cluster.

A classic queue lives on one node. While that node is down, the other node still takes
connections but has no queue to route to: a submission's ``mandatory`` publish comes back
``NO_ROUTE`` at once, so the caller gets ``PublishFailed`` well within the confirm timeout and the
ledger row says ``publish_failed``; the health endpoint says 503 and why. The node is then
replaced with an empty disk (the worse case: the backlog's messages are gone with it). The ledger
still says the backlog is queued, so the aging sweep's recovery publishes it again, and the
failed submissions are sent again from their rows (the admin's "retry" action): every job
runs once.

The control is in the middle: after the node is back, the queue is empty (depth 0), so what runs
afterwards runs because the ledger had it, not because RabbitMQ kept it.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from queueprio.exceptions import PublishFailed
from queueprio.maintenance.aging import sweep
from queueprio.models import Job, JobState
from queueprio.operations.actions import retry_failed
from tests.celery_semantics.conftest import band_books
from tests.support.polling import lines, wait_for
from tests.support.rabbit_cluster import ClusterNode
from tests.support.rabbit_node import USER
from tests.support.tasks import record_completion

from .conftest import Lab, declare_queues, host_worker, queue_depth

pytestmark = [pytest.mark.machines, pytest.mark.django_db(transaction=True)]

BACKLOG = 20
DURING = 5
CONFIRM_TIMEOUT = 3.0


def replace_with_an_empty_node(lost: ClusterNode, survivor: ClusterNode) -> float:
    """The lost node's disk is gone: the cluster forgets it, it comes back empty and joins again."""
    began = time.monotonic()
    survivor.ctl("forget_cluster_node", lost.name)
    mnesia = lost.base / "mnesia"
    shutil.rmtree(mnesia)
    mnesia.mkdir()
    shutil.chown(mnesia, USER, USER)
    lost.start()
    lost.ctl("stop_app")
    lost.ctl("reset")
    lost.ctl("join_cluster", survivor.name)
    lost.ctl("start_app")
    lost.ctl("await_startup", "--timeout", "60", timeout=90)
    return time.monotonic() - began


def health(client: Client) -> tuple[int, dict[str, Any]]:
    response = client.get("/queueprio/health/")
    return response.status_code, response.json()


def test_the_queue_node_fails__fast_failures_then_every_job_once(
    machines: Lab, tmp_path: Path, settings: Any, client: Client
) -> None:
    settings.QUEUEPRIO_CONFIRM_TIMEOUT = CONFIRM_TIMEOUT
    settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = 2  # the sweep (run here) recovers after 2 s
    out = str(tmp_path / "runs.txt")
    node, survivor = machines.queue_node, machines.nodes[1]

    # Given a backlog waiting in the queue, no worker running
    backlog = [f"b{i}" for i in range(BACKLOG)]
    for i, label in enumerate(backlog):
        record_completion.apply_async((label, out), priority=1 + i % 10)
    assert queue_depth(machines) == BACKLOG

    # When the node holding the queue fails
    node.stop()

    # Then submissions through the other node fail fast with PublishFailed, recorded in the ledger
    during = [f"d{i}" for i in range(DURING)]
    for label in during:
        began = time.monotonic()
        with pytest.raises(PublishFailed, match="NO_ROUTE"):
            record_completion.apply_async((label, out), priority=5)
        assert time.monotonic() - began < CONFIRM_TIMEOUT
    assert Job.objects.filter(state=JobState.PUBLISH_FAILED).count() == DURING
    # ... and the health endpoint says 503, and why
    status, report = health(client)
    assert status == 503, report
    assert report["checks"]["broker"] is False
    assert report["reasons"] == ["broker: a priority queue is unavailable (the RabbitMQ node holding it is down)"]

    # When the node is replaced by an empty one (its disk went with it)
    replace_with_an_empty_node(node, survivor)
    declare_queues(machines)
    assert queue_depth(machines) == 0  # the control: RabbitMQ has nothing of the backlog left

    # Then the ledger brings it all back: the sweep's recovery republishes the backlog, the
    # failed submissions are sent again from their rows, and every job runs once
    with ExitStack() as stack:
        for host in machines.hosts:
            stack.enter_context(host_worker(machines, host, tmp_path))
        assert retry_failed(Job.objects.filter(state=JobState.PUBLISH_FAILED)) == DURING

        def all_done() -> bool:
            sweep()
            return Job.objects.filter(state=JobState.SUCCEEDED).count() == BACKLOG + DURING

        wait_for(all_done, timeout=120, interval=1.0, message="every job to run after the node came back")
        status, report = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(health(client)), timeout=30)
        assert "reasons" not in report

    done = Counter(line.split()[1] for line in lines(out) if line.startswith("done "))
    assert set(done) == set(backlog + during), "a job was lost"
    assert done == dict.fromkeys(done, 1), "a job ran twice"
    books = band_books()
    assert {name: pair for name, pair in books.items() if pair[0] != pair[1]} == {}, books
