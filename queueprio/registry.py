"""Which queueprio tasks exist, and what lower layers may ask of one without importing its class.

``PriorityTask`` (``queueprio.priority_task``) sits above every layer that handles tasks, so
they recognise one by its ``queueprio_task`` marker and reach its two hooks through the
functions here.
"""

from __future__ import annotations

import threading
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


#: Apps whose task modules this process imported (outside a worker, where the worker does it).
_imported: set[int] = set()
_import_lock = threading.Lock()


def import_task_modules(app: celery.Celery) -> None:
    """Import the app's task modules (autodiscovery, ``CELERY_IMPORTS``) once per process.

    A worker imported them at start, so in a worker (and each pool process forked from it) this
    does nothing. That matters: Celery's ``loader.import_default_modules()`` sends the
    ``import_modules`` signal, and the Django fixup's receiver runs ``django.setup()`` again,
    which applies ``settings.LOGGING`` again and takes the worker's log handler off the root
    logger. Called on every aging sweep, that silenced the pool process's log from then on.
    Elsewhere (a web process, a shell) it runs once per process: it also runs the system checks.
    """
    if app.loader.worker_initialized:
        return
    with _import_lock:
        if id(app) in _imported:
            return
        app.loader.import_default_modules()
        _imported.add(id(app))


def priority_tasks() -> dict[str, AnyTask]:
    """Every registered queueprio task, after autodiscovery."""
    app = celery.current_app
    import_task_modules(app)
    return {name: task for name, task in sorted(app.tasks.items()) if is_priority_task(task)}


def sync_task_priorities() -> int:
    """Seed a TaskPriority row for every registered task; returns how many were new."""
    return TaskPriority.objects.sync({name: code_default(task) for name, task in priority_tasks().items()})
