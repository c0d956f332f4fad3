"""Read what was really published: take messages off the test vhost's queue."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from kombu import Connection

from queueprio.celery import priority_queue


def drain(conn: Connection, queue: str | None = None, *, limit: int = 10_000) -> list[dict[str, Any]]:
    """Get (and ack) every message in ``queue``; return their properties and headers."""
    bound = priority_queue(queue or settings.QUEUEPRIO_QUEUE).bind(conn.default_channel)
    taken = []
    for _ in range(limit):
        message = bound.get(no_ack=True)
        if message is None:
            break
        taken.append(
            {
                "priority": message.properties.get("priority"),
                "task": message.headers.get("task"),
                "id": message.headers.get("id"),
                "headers": dict(message.headers),
                "properties": dict(message.properties),
                "body": message.body,
            }
        )
    return taken


def declare_plain(conn: Connection, name: str) -> None:
    """A plain durable queue without ``x-max-priority``: what a Celery user has before queueprio."""
    conn.default_channel.queue_declare(name, durable=True, auto_delete=False)


def publish_celery(
    conn: Connection, queue: str, task: str, args: list[Any], *, task_id: str | None = None, **fields: Any
) -> str:
    """Publish one Celery protocol-2 message for ``task`` straight into ``queue``; returns its task id.

    ``fields`` go to Celery's own message builder (``callbacks``, ``chain``, ``retries``, …).
    """
    from celery import current_app
    from kombu.utils.uuid import uuid

    task_id = task_id or uuid()
    message = current_app.amqp.as_task_v2(task_id, task, args, {}, **fields)
    conn.Producer(serializer="json").publish(
        message.body,
        exchange="",
        routing_key=queue,
        headers=message.headers,
        delivery_mode=2,
        retry=False,
        **message.properties,
    )
    return task_id


def depth(conn: Connection, queue: str) -> int:
    """Messages ready in ``queue`` (any arguments; a passive declare on its own channel)."""
    channel = conn.channel()
    try:
        return channel.queue_declare(queue, passive=True).message_count
    finally:
        if channel.is_open:
            channel.close()
