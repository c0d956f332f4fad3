"""What a project's Celery configuration names: ``configure(app)``, the router, the priority queue.

The whole wiring is one call in the project's ``celery.py``::

    app = Celery("mysite")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    queueprio.celery.configure(app)
    app.autodiscover_tasks()

Importable from Django settings (before the app registry is ready), for a project that
writes its Celery settings by hand::

    from queueprio.celery import priority_queue

    CELERY_TASK_QUEUES = (priority_queue("queueprio"),)
    CELERY_TASK_ROUTES = ("queueprio.celery.route_task",)
"""

from __future__ import annotations

from typing import Any

import celery

from .broker.queues import priority_queue
from .wiring import apply, defaults, mark_configured

__all__ = ["configure", "defaults", "priority_queue", "route_task"]


def configure(app: celery.Celery) -> celery.Celery:
    """Give ``app`` every Celery setting priority scheduling needs, unless the project set it.

    The values (:func:`queueprio.wiring.defaults`) are computed from Django settings when the
    app loads its configuration, not now: this runs in the project's ``celery.py``, often before
    Django is set up. A setting the project wrote itself (``CELERY_TASK_ROUTES``, say) always
    wins; ``manage.py check`` then says if that choice defeats priority (``queueprio.W0xx``).
    Returns ``app``.
    """
    mark_configured(app)
    if getattr(app, "configured", False):  # set once the configuration is loaded; not in celery-types
        apply(app, app.conf)
    else:
        # weak=False: the receiver is a closure nobody else holds.
        app.on_after_configure.connect(lambda sender, source, **kw: apply(app, source), weak=False)
    return app


def route_task(
    name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Any = None, **kw: Any
) -> dict[str, Any] | None:
    """Celery's router for queueprio tasks (``queueprio.broker.router.route_task``)."""
    # Imported here, pointing down: the router reads the admin's default priorities (models),
    # and Django settings import this module before the app registry is ready.
    from .broker.router import route_task as route

    return route(name, args, kwargs, options, task, **kw)
