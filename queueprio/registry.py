"""Which queueprio tasks exist, and what lower layers may ask of one without importing its class.

``PriorityTask`` (``queueprio.priority_task``) sits above every layer that handles tasks, so
they recognise one by its ``queueprio_task`` marker and reach its two hooks through the
functions here.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import celery

from .models import TaskPriority

#: A Celery task as the layers below ``PriorityTask`` see it.
AnyTask: TypeAlias = "celery.Task[Any, Any]"


def is_priority_task(task: object) -> bool:
    """Does ``task`` go through queueprio? ``PriorityTask`` sets the ``queueprio_task`` marker."""
    return bool(getattr(task, "queueprio_task", False))


def code_default(task: AnyTask) -> int | None:
    """The priority the task's code gives (``queueprio_priority=``), or ``None``."""
    value: int | None = getattr(task, "queueprio_priority", None)
    return value


def prepare_arguments(task: AnyTask, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The task's own validation of its arguments (``PriorityTask.prepare_arguments``)."""
    prepare = getattr(task, "prepare_arguments", None)
    if prepare is None:
        return args, kwargs
    prepared: tuple[list[Any], dict[str, Any]] = prepare(args, kwargs)
    return prepared


def priority_tasks() -> dict[str, AnyTask]:
    """Every registered queueprio task, after autodiscovery."""
    app = celery.current_app
    app.loader.import_default_modules()
    return {name: task for name, task in sorted(app.tasks.items()) if is_priority_task(task)}


def sync_task_priorities() -> int:
    """Seed a TaskPriority row for every registered task; returns how many were new."""
    return TaskPriority.objects.sync({name: code_default(task) for name, task in priority_tasks().items()})
