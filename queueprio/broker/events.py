"""Celery's task-sent event, published without waiting for a publisher confirm of its own.

With ``confirm_publish`` on, py-amqp puts every channel of the connection in confirm mode, and
Celery publishes the task-sent event on the task's own channel right after the task message:
every submission waits for the broker twice, the second time for a transient monitoring
message whose loss costs one line in Flower (the worker's task-received event follows anyway).

queueprio publishes that event on a second channel of the same connection that is never put
in confirm mode. The task message itself is still confirmed before ``apply_async`` returns;
only the event no longer waits. (It can't simply skip the wait on the task's channel: the
event's ack would then be read as the next task's.)
"""

from __future__ import annotations

import logging
import weakref
from functools import cache
from typing import Any

import celery
from celery.events.dispatcher import EventDispatcher
from kombu import Producer

logger = logging.getLogger("queueprio")

#: One producer on an unconfirmed channel per live AMQP connection; it goes with its connection.
_producers: weakref.WeakKeyDictionary[Any, Producer] = weakref.WeakKeyDictionary()


class SentEventDispatcher(EventDispatcher):
    """Publishes the events Celery hands it (task-sent) on the connection's unconfirmed channel.

    Best effort, like the event itself: one attempt (no reconnect and back-off while the
    submission holds its ledger transaction open), and a failure is logged, not raised and not
    buffered (a buffer nothing flushes would only grow while the broker is away).
    """

    def publish(self, type: str, fields: dict[str, Any], producer: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["retry"] = False
        try:
            return super().publish(type, fields, unconfirmed(producer), *args, **kwargs)
        except Exception as exc:
            logger.info("task-sent event not published task_id=%s error=%r", fields.get("uuid"), exc)
            return None

    def publish_many(self, fields: list[dict[str, Any]], producer: Any) -> None:
        """Many task-sent events as one message (a list body, routing key ``task.multi``).

        Celery's own batched form (``EventDispatcher.flush`` of a buffered group), which its
        ``EventReceiver`` and so Flower read event by event: a batch of jobs then costs the
        broker one event message per chunk instead of one per job.
        """
        if not fields:
            return
        try:
            events = [self._prepare_event("task-sent", each) for each in fields]  # type: ignore[attr-defined]
            with self.mutex:  # type: ignore[attr-defined]  # celery-types lists neither
                self._publish(events, unconfirmed(producer), routing_key="task.multi", retry=False)  # type: ignore[attr-defined]
        except Exception as exc:
            logger.info("task-sent events not published count=%s error=%r", len(fields), exc)


@cache
def sent_events(app: celery.Celery) -> SentEventDispatcher:
    """The dispatcher queueprio passes to ``apply_async`` (``event_dispatcher=``) for ``app``."""
    # Not enabled: it never opens a connection of its own, it only publishes with the one given.
    return SentEventDispatcher(app=app, enabled=False, buffer_while_offline=False)


def unconfirmed(producer: Any) -> Any:
    """A producer on the same connection as ``producer``, whose channel is not in confirm mode.

    Falls back to ``producer`` itself for a transport without a separate AMQP connection object.
    """
    connection = getattr(producer.connection, "connection", None)
    if connection is None:
        return producer
    try:
        events = _producers.get(connection)
    except TypeError:  # not weak-referenceable: no cache, no second channel
        return producer
    if events is None or not getattr(events.channel, "is_open", False):
        channel = producer.connection.channel()
        stop_confirming(channel)
        events = _producers[connection] = Producer(channel, auto_declare=False)
    return events


def stop_confirming(channel: Any) -> bool:
    """Publish on ``channel`` without waiting for confirms, if it hasn't entered confirm mode yet.

    py-amqp swaps in the confirming publish on every channel of a confirming connection; the
    plain one never calls confirm.select, so the channel stays out of confirm mode. ``False``:
    not a py-amqp channel, or already confirming (a channel can't leave confirm mode).
    """
    plain = getattr(channel, "_basic_publish", None)
    if plain is None or getattr(channel, "_confirm_selected", True):
        return False
    channel.basic_publish = plain
    return True
