"""The Celery tasks queueprio registers, found by ``app.autodiscover_tasks()``: the periodic ones, and
the one Django's Tasks run inside (``queueprio.backends.QueueprioBackend``).

The task *base class* lives in ``queueprio.priority_task`` (``queueprio.PriorityTask``). Its old
path, ``queueprio.tasks.PriorityTask``, works for one more release with a ``DeprecationWarning``.
"""

from __future__ import annotations

import warnings
from typing import Any

from .maintenance.tasks import age_waiting_jobs, prune, reconcile_bands, rollup_metrics
from .taskbridge.runner import run_django_task

__all__ = ["age_waiting_jobs", "prune", "reconcile_bands", "rollup_metrics", "run_django_task"]


def __getattr__(name: str) -> Any:
    if name == "PriorityTask":
        warnings.warn(
            "queueprio.tasks.PriorityTask moved: import it as queueprio.PriorityTask",
            DeprecationWarning,
            stacklevel=2,
        )
        from .priority_task import PriorityTask  # lazy like the warning; points down

        return PriorityTask
    raise AttributeError(f"module 'queueprio.tasks' has no attribute {name!r}")
