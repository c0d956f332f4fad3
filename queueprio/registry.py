"""Which queueprio tasks exist, and their code defaults: the source the admin's table is seeded from."""

from __future__ import annotations

from typing import TYPE_CHECKING

import celery

if TYPE_CHECKING:
    from .tasks import PriorityTask


def priority_tasks() -> dict[str, PriorityTask]:
    """Every registered task whose base is ``PriorityTask``, after autodiscovery."""
    from .tasks import PriorityTask

    app = celery.current_app
    app.loader.import_default_modules()
    return {name: task for name, task in sorted(app.tasks.items()) if isinstance(task, PriorityTask)}


def sync_task_priorities() -> int:
    """Seed a TaskPriority row for every registered task; returns how many were new."""
    from .models import TaskPriority

    return TaskPriority.objects.sync({name: task.queueprio_priority for name, task in priority_tasks().items()})
