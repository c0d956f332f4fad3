"""The Celery router for queueprio tasks (``CELERY_TASK_ROUTES = ("queueprio.broker.router.route_task",)``)."""

from __future__ import annotations

from typing import Any

from ..conf import settings
from ..models import TaskPriority
from ..priority import AMQP_MAX_PRIORITY
from ..registry import code_default, is_priority_task
from .protocol import HEADER_PRIORITY, amqp_priority
from .queues import queue_for


def route_task(
    name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any = None, **kw: Any
) -> dict[str, Any] | None:
    """Celery router (``CELERY_TASK_ROUTES``) for queueprio tasks; ``None`` leaves others alone.

    The priority it routes on is the one queueprio resolved and put in the headers. A
    message sent around queueprio (``send_task`` by name, no priority) gets the task's
    default priority here, so it doesn't sink below everything at AMQP priority 0.
    """
    if getattr(task, "queueprio_maintenance", False):
        return {"queue": settings.QUEUE, "priority": AMQP_MAX_PRIORITY}
    if not is_priority_task(task):
        return None
    priority = (options.get("headers") or {}).get(HEADER_PRIORITY)
    route: dict[str, Any] = {}
    if priority is None and options.get("priority") is None:
        priority, _ = TaskPriority.objects.resolve(task.name, None, code_default=code_default(task))
        route["priority"] = amqp_priority(priority)
    route["queue"] = queue_for(priority)
    return route
