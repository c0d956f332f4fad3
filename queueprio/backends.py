"""A backend for Django's Tasks framework that submits through queueprio.

::

    TASKS = {"default": {"BACKEND": "queueprio.backends.QueueprioBackend"}}

``@task(priority=…)`` and ``.enqueue()`` then take queueprio's submission path (validation,
admission, the ledger, a priority queue on RabbitMQ): the Django priority (-100…100, larger
more urgent) maps onto queueprio's 1…10 in bands of 20 (``queueprio.taskbridge.mapping``),
``run_after`` holds the job like a countdown, and ``get_result`` reads the ledger and Celery's
result backend. Django 6's ``django.tasks`` is used when present, else the ``django-tasks``
backport (``pip install "queueprio[tasks]"``).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from .priority_task import enqueue
from .taskbridge import compat, registry, results
from .taskbridge.mapping import to_queueprio


class QueueprioBackend(compat.BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        # Validated here means runnable by a worker: the registry is its allow-list.
        registry.register(task)

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Submit ``task`` to queueprio; raises what a submission raises (``queueprio.Rejected``, …)."""
        self.validate_task(task)
        args, kwargs = compat.normalize_json(list(args)), compat.normalize_json(dict(kwargs))
        options: dict[str, Any] = {"priority": to_queueprio(task.priority)}
        if task.run_after is not None:
            # Held in the ledger and published with an ETA, like Celery's countdown.
            options["eta"] = task.run_after
        submitted = enqueue(results.RUNNER, args=[task.module_path, args, kwargs], **options)
        result = results.new_result(task, submitted.id, args, kwargs, backend=self.alias, enqueued_at=timezone.now())
        compat.task_enqueued.send(sender=type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        return results.read(result_id, backend=self.alias)
