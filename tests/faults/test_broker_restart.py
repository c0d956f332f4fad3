"""The broker stops and starts mid-run: workers reconnect by themselves, no job is lost or run twice.

Runs against a throwaway RabbitMQ node (``tests/support/rabbit_node.py``), never the shared one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from kombu import Connection

from queueprio.celery import priority_queue
from queueprio.models import Job, JobState
from queueprio.submission.batch import submit_batch
from tests.support.ledger import stored_statuses
from tests.support.polling import lines, wait_for
from tests.support.rabbit_node import RabbitNode, celery_broker, throwaway_node
from tests.support.tasks import record
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

JOBS = 2_000
PRIORITIES = range(1, 11)


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitNode]:
    with throwaway_node(vhost=settings.TEST_VHOST) as started:
        yield started


def depth(url: str) -> int:
    with Connection(url) as conn:
        _, count, _ = priority_queue(settings.QUEUEPRIO_QUEUE).bind(conn.default_channel).queue_declare(passive=True)
        return count


def test_broker_restart__every_job_runs_exactly_once(node: RabbitNode, tmp_path: Path) -> None:
    out = str(tmp_path / "runs.txt")
    url = f"{node.url}/{node.vhost}"
    worker_env = {"QUEUEPRIO_TEST_BROKER": node.url}
    with celery_broker(url):
        # Given a backlog of mixed priorities, published (confirmed) to the throwaway node
        with Connection(url) as conn:
            priority_queue(settings.QUEUEPRIO_QUEUE).bind(conn.default_channel).declare()
        labels = []
        for priority in PRIORITIES:
            calls = [([f"p{priority}-{i}", out], {}) for i in range(JOBS // len(PRIORITIES))]
            labels += [args[0] for args, _ in calls]
            submit_batch(record, calls, priority=priority)
        assert depth(url) == JOBS

        with running_worker(tmp_path, env=worker_env) as first, running_worker(tmp_path, env=worker_env) as second:
            # When the node stops and starts while two workers are busy with it
            wait_for(lambda: len(lines(out)) >= JOBS // 4, timeout=120, message="a quarter of the jobs to run")
            done_before = len(lines(out))
            node.restart()
            back = timezone.now()
            # Then the workers reconnect on their own and finish the rest
            wait_for(
                lambda: Job.objects.filter(state=JobState.SUCCEEDED).count() == JOBS,
                timeout=180,
                interval=0.5,
                message="every job to succeed after the restart",
            )
            wait_for(lambda: depth(url) == 0, timeout=60, message="the queue to drain")
            # Both reconnected: each ran jobs after the node came back.
            after = set(Job.objects.filter(started_at__gt=back).values_list("worker", flat=True))
            for worker in (first, second):
                assert worker.proc.poll() is None
                assert worker.name.split("@")[0] in {name.split("@")[0] for name in after}

    assert done_before < JOBS  # the restart really happened mid-run
    runs = Counter(lines(out))
    assert set(runs) == set(labels), "jobs lost"
    assert {label: n for label, n in runs.items() if n != 1} == {}, "jobs run twice"
    assert Job.objects.count() == JOBS
    assert Job.objects.exclude(state=JobState.SUCCEEDED).count() == 0
    # A copy redelivered after its job finished (the ack died with the connection) is dropped
    # without touching the stored result.
    assert stored_statuses() == {"SUCCESS": JOBS}
