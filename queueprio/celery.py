"""What a project's Celery configuration names: the router and the priority-queue declaration.

Importable from Django settings (before the app registry is ready)::

    from queueprio.celery import priority_queue

    CELERY_TASK_QUEUES = (priority_queue("queueprio"),)
    CELERY_TASK_ROUTES = ("queueprio.celery.route_task",)
"""

from __future__ import annotations

from typing import Any

from .broker.queues import priority_queue

__all__ = ["priority_queue", "route_task"]


def route_task(
    name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any = None, **kw: Any
) -> dict[str, Any] | None:
    """Celery's router for queueprio tasks (``queueprio.broker.router.route_task``)."""
    # Imported here, pointing down: the router reads the admin's default priorities (models),
    # and Django settings import this module before the app registry is ready.
    from .broker.router import route_task as route

    return route(name, args, kwargs, options, task, **kw)
