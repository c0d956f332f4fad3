"""Django Tasks (the framework's ``@task``) the tests run through queueprio's backend in real workers."""

from __future__ import annotations

import time
from typing import Any

from queueprio.taskbridge.compat import TaskContext
from tests.support.tasks import append_line

try:
    from django.tasks import task
except ImportError:  # Django < 6: the backport
    from django_tasks import task


@task()
def note(label: str, path: str) -> str:
    """Append ``label`` to ``path`` as it starts; return it."""
    append_line(path, label)
    return label


@task(priority=80)
def urgent_note(label: str, path: str) -> dict[str, Any]:
    append_line(path, label)
    return {"label": label, "pair": (1, 2)}  # the tuple comes back as a list (JSON)


@task()
def fail(message: str) -> None:
    raise ValueError(message)


@task(takes_context=True)
def introspect(context: TaskContext, path: str) -> list[Any]:
    append_line(path, context.task_result.id)
    return [context.attempt, context.task_result.id]


@task()
def hold(path: str, seconds: float) -> None:
    append_line(path, "hold")
    time.sleep(seconds)
