"""The ledger row is written, then the publish fails: the row says so and the caller is told.

Two ways a publish fails after the row exists: the connection dies under the producer, and
the broker can't route the message (queueprio publishes ``mandatory``, so RabbitMQ returns it
instead of dropping it and confirming). Against the real broker.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from kombu import Connection, Exchange, Producer

from queueprio import PublishFailed
from queueprio.broker.publish import failed
from queueprio.celery import priority_queue
from queueprio.maintenance.aging import sweep
from queueprio.models import Band, Job, JobState
from queueprio.submission.batch import submit_batch
from tests.conftest import queue_depth, rabbitmqctl
from tests.support.ledger import make_job
from tests.support.messages import drain
from tests.support.tasks import record

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def assert_failed_and_released(job: Job, *, cause: str) -> None:
    job.refresh_from_db()
    assert job.state == JobState.PUBLISH_FAILED
    assert job.error.startswith("publish failed: "), job.error
    assert cause in job.error
    assert Band.objects.get(pk=job.band_id).queued == 0  # its place in the band is given back


def test_connection_closed_under_the_producer__publish_failed(broker: Connection, tmp_path) -> None:
    with Connection(settings.CELERY_BROKER_URL) as conn:
        producer = Producer(conn.default_channel)
        conn.connection.sock.shutdown(socket.SHUT_RDWR)  # the connection dies under it
        with pytest.raises(PublishFailed, match="publishing task"):
            record.apply_async(args=["x", str(tmp_path / "o")], priority=4, retry=False, producer=producer)
    assert_failed_and_released(Job.objects.get(), cause="")
    assert queue_depth(broker) == 0


@pytest.fixture
def unbound_exchange(broker: Connection) -> Iterator[str]:
    """A direct exchange no queue is bound to: whatever is sent to it can't be routed."""
    exchange = Exchange("queueprio-test-unbound", type="direct", durable=False)
    exchange.bind(broker.default_channel).declare()
    yield exchange.name
    exchange.bind(broker.default_channel).delete()


@pytest.fixture
def queue_gone(broker: Connection, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The priority queue deleted, and this process told not to declare it again before publishing."""
    app = record.app
    monkeypatch.setattr(app.amqp.queues[settings.QUEUEPRIO_QUEUE], "no_declare", True)
    broker.default_channel.queue_delete(settings.QUEUEPRIO_QUEUE)
    yield
    priority_queue(settings.QUEUEPRIO_QUEUE).bind(broker.default_channel).declare()


def test_misrouted__returned_message_is_a_publish_failure(broker: Connection, tmp_path, unbound_exchange) -> None:
    with pytest.raises(PublishFailed, match="NO_ROUTE") as raised:
        record.apply_async(args=["x", str(tmp_path / "o")], priority=4, exchange=unbound_exchange, routing_key="x")
    job = Job.objects.get()
    assert raised.value.task_id == job.task_id
    assert_failed_and_released(job, cause="NO_ROUTE")
    assert queue_depth(broker) == 0


def test_deleted_queue__publish_failed_then_works_once_it_is_back(broker: Connection, tmp_path, queue_gone) -> None:
    with pytest.raises(PublishFailed, match="NO_ROUTE"):
        record.apply_async(args=["x", str(tmp_path / "o")], priority=4)
    assert_failed_and_released(Job.objects.get(), cause="NO_ROUTE")

    priority_queue(settings.QUEUEPRIO_QUEUE).bind(broker.default_channel).declare()
    # The same pooled channel stays in step: the next publish is confirmed as its own.
    ok = record.apply_async(args=["y", str(tmp_path / "o")], priority=4)
    assert [m["id"] for m in drain(broker)] == [ok.id]


def test_batch__returned_jobs_are_marked_and_the_caller_told(broker: Connection, tmp_path, queue_gone) -> None:
    calls = [([f"b{i}", str(tmp_path / "o")], {}) for i in range(5)]
    with pytest.raises(PublishFailed, match="NO_ROUTE"):
        submit_batch(record, calls, priority=6)
    assert list(Job.objects.values_list("state", flat=True)) == [JobState.PUBLISH_FAILED] * 5
    assert Band.objects.get(name="background").queued == 0


def test_aging__a_returned_copy_leaves_the_row_as_it_was(broker: Connection, tmp_path, settings) -> None:
    result = record.apply_async(args=["x", str(tmp_path / "o")], priority=9)
    settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = 1
    past = timezone.now() - timedelta(seconds=1.5)
    Job.objects.filter(task_id=result.id).update(queued_at=past, aging_since=past, next_aging_at=timezone.now())
    app = record.app
    queue = app.amqp.queues[settings.QUEUEPRIO_QUEUE]
    queue.no_declare = True
    try:
        broker.default_channel.queue_delete(settings.QUEUEPRIO_QUEUE)  # the first copy goes with it
        assert sweep().failed == 1
    finally:
        queue.no_declare = False
    job = Job.objects.get(task_id=result.id)
    assert (job.state, job.generation, job.effective_priority) == (JobState.QUEUED, 1, 9)

    priority_queue(settings.QUEUEPRIO_QUEUE).bind(broker.default_channel).declare()
    assert sweep().aged == 1  # still due: the next sweep publishes the copy the first one couldn't
    assert [(m["id"], m["headers"]["qp_generation"]) for m in drain(broker)] == [(result.id, 2)]


def test_idle_pooled_connection_closed_by_the_broker__the_next_submission_goes_through(
    broker_vhost: str, broker: Connection, tmp_path
) -> None:
    out = str(tmp_path / "o")
    first = record.apply_async(args=["a", out], priority=4)  # the process's pooled connection is open now
    # The broker closes it while it is idle (a restart, a policy, an operator)
    rabbitmqctl("close_all_connections", "--vhost", broker_vhost, "queueprio test: idle connection closed")
    # The next submission finds out only when it reads its confirm: it publishes again, reconnected
    again = record.apply_async(args=["b", out], priority=4)
    assert Job.objects.get(task_id=again.id).state == JobState.QUEUED
    with Connection(settings.CELERY_BROKER_URL) as fresh:
        ids = [m["id"] for m in drain(fresh)]
    assert first.id in ids
    assert again.id in ids


@pytest.mark.parametrize(
    ("state", "claimed", "told_failed"),
    [("queued", None, True), ("started", 1, False), ("succeeded", 1, False)],
)
def test_unconfirmed_publish__the_caller_is_told_failed_only_if_no_copy_was_claimed(
    state: str, claimed: int | None, told_failed: bool
) -> None:
    # RabbitMQ can deliver a message before confirming it: a lost confirm doesn't mean a lost job.
    job = make_job(queued_at=timezone.now(), state=state, claimed_generation=claimed, band="normal")
    if told_failed:
        with pytest.raises(PublishFailed):
            failed(job, TimeoutError("no confirm"))
    else:
        failed(job, TimeoutError("no confirm"))
    job.refresh_from_db()
    assert job.state == (JobState.PUBLISH_FAILED if told_failed else state)
