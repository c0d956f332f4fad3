"""A batch's task-sent events: every job's, in a few list messages (Celery's ``task.multi`` form)."""

from __future__ import annotations

from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from kombu.utils import json

from queueprio.broker import pipeline
from queueprio.submission.batch import submit_batch
from tests.support.tasks import record

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def events(broker: Connection) -> Queue:
    """A queue bound to Celery's event exchange for task events, as Flower's receiver binds."""
    queue = Queue("test-qp-task-events", Exchange("celeryev", type="topic"), routing_key="task.#", auto_delete=True)
    bound = queue.bind(broker.default_channel)
    bound.declare()
    bound.purge()
    return bound


def sent_events(queue: Queue) -> tuple[int, list[dict[str, Any]]]:
    """(messages, the task-sent events in them): a body is one event or a list of them."""
    messages, found = 0, []
    while (message := queue.get(no_ack=True)) is not None:
        messages += 1
        body = json.loads(message.body)
        found += body if isinstance(body, list) else [body]
    return messages, [event for event in found if event["type"] == "task-sent"]


def test_batch__every_task_sent_event_arrives_in_chunks(events: Queue, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(pipeline, "EVENT_CHUNK", 4)

    result = submit_batch(record, [(["x", str(tmp_path / "o")], {})] * 10, priority=5)

    messages, sent = sent_events(events)
    assert messages == 3  # 4 + 4 + 2
    assert [event["uuid"] for event in sent] == result.ids
    assert {event["name"] for event in sent} == {"tests.record"}


def test_control__single_submissions_send_one_event_message_each(events: Queue, tmp_path) -> None:
    ids = [record.apply_async(args=["x", str(tmp_path / "o")], priority=5).id for _ in range(3)]

    messages, sent = sent_events(events)
    assert messages == 3
    assert [event["uuid"] for event in sent] == ids
