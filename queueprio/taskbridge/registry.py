"""The Django tasks a queueprio backend has validated: the only ones a worker runs.

A message names its Django task by module path. The worker never imports that path: it looks
it up here. A task gets here when a ``QueueprioBackend`` validates it, which Django does as the
``@task`` decorator runs, i.e. when the task's module is imported — in a worker, by Celery's
autodiscovery of each installed app's ``tasks`` module (or ``CELERY_IMPORTS``).
"""

from __future__ import annotations

import threading
from typing import Any

import celery

_tasks: dict[str, Any] = {}
_lock = threading.Lock()


def register(task: Any) -> None:
    """Remember a validated Django task by its module path (the first one seen stays)."""
    with _lock:
        _tasks.setdefault(task.module_path, task)


def lookup(module_path: str) -> Any | None:
    """The registered Django task at ``module_path``; ``None`` if no backend validated one.

    A miss runs Celery's autodiscovery (it imports each installed app's ``tasks`` module, as a
    worker does at start-up; once per process, never again in a worker) and looks again: the web
    process may not have imported the module yet when it reads a result back.
    """
    found = _tasks.get(module_path)
    if found is None:
        # Imported here: queueprio.registry needs the models, and this module is imported while
        # Django validates a task, which can be before the app registry is ready.
        from ..registry import import_task_modules

        import_task_modules(celery.current_app)
        found = _tasks.get(module_path)
    return found


def known() -> list[str]:
    return sorted(_tasks)
