"""The Celery task a Django task runs inside: ``queueprio.run_django_task``.

Its message carries ``[module_path, args, kwargs]``. The worker runs the Django task registered
under that path (``registry``), never whatever a message names: a path no ``QueueprioBackend``
validated is refused at submission and fails the job in a worker.
"""

from __future__ import annotations

import traceback
from typing import Any

from celery import shared_task
from django.utils import timezone

from ..exceptions import InvalidArguments
from ..priority_task import PriorityTask
from . import registry


class UnknownDjangoTask(LookupError):
    """The message names a Django task this worker has not registered."""


class DjangoTaskRunner(PriorityTask):
    """Refuses, before anything is recorded or sent, a message that names no registered Django task."""

    def prepare_arguments(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        if kwargs or len(args) != 3 or not isinstance(args[1], list) or not isinstance(args[2], dict):
            raise InvalidArguments("expected [module_path, args, kwargs]")
        if not isinstance(args[0], str) or registry.lookup(args[0]) is None:
            raise InvalidArguments(f"{args[0]!r} is not a Django task validated by a queueprio backend")
        return args, kwargs


@shared_task(name="queueprio.run_django_task", base=DjangoTaskRunner, bind=True)
def run_django_task(self: DjangoTaskRunner, module_path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Run the registered Django task at ``module_path``; its JSON-normalised return value is the result."""
    from . import compat, results  # the Tasks framework is an optional extra: only a run needs it

    task = registry.lookup(module_path)
    if task is None:
        raise UnknownDjangoTask(
            f"Django task {module_path!r} is not registered in this worker: define it in an installed app's "
            f"tasks module, or list its module in CELERY_IMPORTS (registered: {', '.join(registry.known()) or 'none'})"
        )
    request = self.request
    sender = type(task.get_backend())
    running = results.new_result(
        task,
        str(request.id),
        args,
        kwargs,
        backend=task.backend,
        status=compat.TaskResultStatus.RUNNING,
        started_at=timezone.now(),
        worker_ids=[str(request.hostname)] * (request.retries + 1),
    )
    compat.task_started.send(sender=sender, task_result=running)
    try:
        if task.takes_context:
            value = task.call(compat.TaskContext(task_result=running), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        value = compat.normalize_json(value)
    except BaseException as exc:
        object.__setattr__(running, "status", compat.TaskResultStatus.FAILED)
        running.errors.append(
            compat.TaskError(
                exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
                traceback="".join(traceback.format_exception(exc)),
            )
        )
        object.__setattr__(running, "finished_at", timezone.now())
        compat.task_finished.send(sender=sender, task_result=running)
        raise
    object.__setattr__(running, "status", compat.TaskResultStatus.SUCCESSFUL)
    object.__setattr__(running, "finished_at", timezone.now())
    object.__setattr__(running, "_return_value", value)
    compat.task_finished.send(sender=sender, task_result=running)
    return value
