"""queueprio: observable, starvation-free priority scheduling for Celery on RabbitMQ.

Priorities run from 1 (most urgent) to 10 (least urgent); RabbitMQ sees the reverse.
Everything here is importable before Django's app registry is ready: names that need
models are loaded on first access.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .exceptions import (
    InvalidArguments,
    InvalidPriority,
    PathOutsideRoot,
    PublishFailed,
    QueueFull,
    QueueprioError,
    QuotaExceeded,
    Rejected,
    UnknownTask,
)
from .priority import DEFAULT_PRIORITY, LEAST_URGENT, MOST_URGENT, Priority, to_amqp, validate_priority

if TYPE_CHECKING:
    from .submit import enqueue
    from .tasks import PriorityTask

__all__ = [
    "DEFAULT_PRIORITY",
    "LEAST_URGENT",
    "MOST_URGENT",
    "InvalidArguments",
    "InvalidPriority",
    "PathOutsideRoot",
    "Priority",
    "PriorityTask",
    "PublishFailed",
    "QueueFull",
    "QueueprioError",
    "QuotaExceeded",
    "Rejected",
    "UnknownTask",
    "enqueue",
    "to_amqp",
    "validate_priority",
]

_LAZY = {"enqueue": "queueprio.submit", "PriorityTask": "queueprio.tasks"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'queueprio' has no attribute {name!r}")
