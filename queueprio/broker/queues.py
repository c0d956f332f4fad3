"""Queue declarations: pure functions, no I/O."""

from __future__ import annotations

from kombu import Exchange, Queue

from ..conf import settings
from ..priority import AMQP_MAX_PRIORITY


def queue_arguments() -> dict[str, int]:
    """The arguments every queueprio queue is declared with; they can never change later."""
    return {"x-max-priority": AMQP_MAX_PRIORITY}


def priority_queue(name: str) -> Queue:
    """A durable classic queue that RabbitMQ orders by message priority."""
    return Queue(
        name,
        Exchange(name, type="direct", durable=True),
        routing_key=name,
        durable=True,
        queue_arguments=queue_arguments(),
    )


def choose_queue(priority: int | None, *, queue: str, lane_queue: str, lane_max_priority: int | None) -> str:
    """The queue for a job at ``priority``: the reserved lane when it is urgent enough."""
    if priority is not None and lane_max_priority is not None and priority <= lane_max_priority:
        return lane_queue
    return queue


def queue_for(priority: int | None) -> str:
    """:func:`choose_queue` with the configured queues; ``None`` (or queueprio off) is the main queue."""
    return choose_queue(
        priority if settings.ENABLED else None,
        queue=settings.QUEUE,
        lane_queue=settings.LANE_QUEUE,
        lane_max_priority=settings.LANE_MAX_PRIORITY,
    )
