"""Queue declarations and the Celery router: pure functions, no I/O."""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from .priority import AMQP_MAX_PRIORITY

#: Message header names queueprio sets on every message it publishes.
HEADER_PRIORITY = "qp_priority"
HEADER_GENERATION = "qp_generation"
HEADER_BAND = "qp_band"
#: For log lines on the worker side, without a database read: requested priority, and when
#: the job became eligible to run (epoch seconds).
HEADER_REQUESTED = "qp_requested"
HEADER_QUEUED_AT = "qp_queued_at"


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


def route_task(name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any = None, **kw: Any) -> dict | None:
    """Celery router (``CELERY_TASK_ROUTES``) for queueprio tasks; ``None`` leaves others alone.

    The priority it routes on is the one queueprio resolved and put in the headers. A
    message sent around queueprio (``send_task`` by name, no priority) gets the task's
    default priority here, so it doesn't sink below everything at AMQP priority 0.
    """
    from .conf import settings
    from .publish import amqp_priority
    from .tasks import PriorityTask

    if getattr(task, "queueprio_maintenance", False):
        return {"queue": settings.QUEUE, "priority": AMQP_MAX_PRIORITY}
    if not isinstance(task, PriorityTask):
        return None
    priority = (options.get("headers") or {}).get(HEADER_PRIORITY)
    route: dict[str, Any] = {}
    if priority is None and options.get("priority") is None:
        from .submit import resolve

        priority, _ = resolve(task, None)
        route["priority"] = amqp_priority(priority)
    route["queue"] = choose_queue(
        priority if settings.ENABLED else None,
        queue=settings.QUEUE,
        lane_queue=settings.LANE_QUEUE,
        lane_max_priority=settings.LANE_MAX_PRIORITY,
    )
    return route
