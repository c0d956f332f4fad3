"""A worker's own events (task-received, -started, -succeeded…) published without confirms.

``configure(app)`` turns on publisher confirms for the broker connection, and py-amqp applies
them to every channel of it: Celery's worker then waits for RabbitMQ's ack of each monitoring
event it sends, in its main process's event loop, the loop that also hands jobs to the pool.
That wait was half the main process's time per job (py-spy, ``bench/worker.py``; docs/benchmarks.md).
Events are transient monitoring messages (Flower, ``celery events``): losing one in a broker
crash costs a line in a monitor, never a job. The jobs' own messages keep their confirms.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from ..broker.events import stop_confirming

logger = logging.getLogger("queueprio")


class UnconfirmedEvents(bootsteps.StartStopStep):
    """Runs after Celery's ``Events`` step each time the consumer (re)starts: its dispatcher's
    channel, new then, publishes without waiting for confirms."""

    label = "queueprio unconfirmed events"
    requires = ("celery.worker.consumer.events:Events",)

    def start(self, parent: Any) -> None:
        dispatcher = getattr(parent, "event_dispatcher", None)
        if dispatcher is None or not dispatcher.enabled or dispatcher.producer is None:
            return
        try:
            stop_confirming(dispatcher.producer.channel)
        except Exception as exc:  # the connection is down: the events keep their confirms
            logger.info("worker events keep publisher confirms: %r", exc)
