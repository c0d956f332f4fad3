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
    from .observability.jobs import JobInfo, job, jobs
    from .operations.cancel import revoke
    from .priority_task import PriorityTask, enqueue
    from .submission.batch import BatchResult, submit_batch
    from .submission.rejections import record_rejection
    from .worker.progress import progress

#: This release (the distribution's version is read from here).
__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PRIORITY",
    "LEAST_URGENT",
    "MOST_URGENT",
    "BatchResult",
    "InvalidArguments",
    "InvalidPriority",
    "JobInfo",
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
    "job",
    "jobs",
    "progress",
    "record_rejection",
    "revoke",
    "submit_batch",
    "to_amqp",
    "validate_priority",
]

# Loaded on first access: these need Django's app registry (they import the models).
_LAZY = {
    "BatchResult": "queueprio.submission.batch",
    "JobInfo": "queueprio.observability.jobs",
    "PriorityTask": "queueprio.priority_task",
    "enqueue": "queueprio.priority_task",
    "job": "queueprio.observability.jobs",
    "jobs": "queueprio.observability.jobs",
    "record_rejection": "queueprio.submission.rejections",
    "progress": "queueprio.worker.progress",
    "revoke": "queueprio.operations.cancel",
    "submit_batch": "queueprio.submission.batch",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'queueprio' has no attribute {name!r}")
