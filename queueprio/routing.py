"""Deprecated: the old home of the router and the queue helper. Works for one more release.

Use ``queueprio.celery.route_task`` in ``CELERY_TASK_ROUTES`` and ``queueprio.celery.priority_queue``
in ``CELERY_TASK_QUEUES`` (or ``queueprio.celery.configure(app)``, which sets both).
"""

from __future__ import annotations

import warnings

from .broker.protocol import HEADER_BAND, HEADER_GENERATION, HEADER_PRIORITY, HEADER_QUEUED_AT, HEADER_REQUESTED
from .broker.queues import choose_queue, priority_queue, queue_arguments
from .broker.router import route_task

warnings.warn(
    "queueprio.routing is deprecated: use queueprio.celery.route_task and queueprio.celery.priority_queue",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "HEADER_BAND",
    "HEADER_GENERATION",
    "HEADER_PRIORITY",
    "HEADER_QUEUED_AT",
    "HEADER_REQUESTED",
    "choose_queue",
    "priority_queue",
    "queue_arguments",
    "route_task",
]
