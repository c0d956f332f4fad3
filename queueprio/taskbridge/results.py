"""A queueprio job read back as a Django ``TaskResult``: the ledger for state and times, Celery's
result backend for the return value and the exception."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

import celery
from celery import states
from celery.result import AsyncResult

from . import compat, registry

#: The Celery task every Django task runs inside (``queueprio.taskbridge.runner``).
RUNNER = "queueprio.run_django_task"

#: The ledger's job states (``queueprio.models.JobState`` values) as Django's statuses.
#: Ledger state -> Django's task status. Django's has no "cancelled" or "expired": a job that
#: will never run is reported FAILED, as its Celery result (REVOKED) is a failure too.
STATUS = {
    "scheduled": compat.TaskResultStatus.READY,
    "queued": compat.TaskResultStatus.READY,
    "started": compat.TaskResultStatus.RUNNING,
    "succeeded": compat.TaskResultStatus.SUCCESSFUL,
    "failed": compat.TaskResultStatus.FAILED,
    "publish_failed": compat.TaskResultStatus.FAILED,
    "cancelled": compat.TaskResultStatus.FAILED,
    "expired": compat.TaskResultStatus.FAILED,
    "ignored": compat.TaskResultStatus.FAILED,
    "rejected": compat.TaskResultStatus.FAILED,
    "replaced": compat.TaskResultStatus.SUCCESSFUL,
}


def new_result(
    task: Any,
    result_id: str,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    backend: str,
    status: Any = compat.TaskResultStatus.READY,
    enqueued_at: datetime | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    errors: list[Any] | None = None,
    worker_ids: list[str] | None = None,
) -> Any:
    return compat.TaskResult(
        task=task,
        id=result_id,
        status=status,
        enqueued_at=enqueued_at,
        started_at=started_at,
        finished_at=finished_at,
        last_attempted_at=started_at,
        args=args,
        kwargs=kwargs,
        backend=backend,
        errors=errors or [],
        worker_ids=worker_ids or [],
    )


def read(result_id: str, *, backend: str) -> Any:
    """The ``TaskResult`` of job ``result_id``, or ``TaskResultDoesNotExist``.

    A job that is not a Django task's (another queueprio task), was pruned, or whose Django task
    this process can't find is reported as not existing.
    """
    # Imported here, pointing down: a Django task module may be imported (and this backend with
    # it) before the app registry is ready.
    from ..models import Job

    row = (
        Job.objects.filter(task_id=result_id, task_name=RUNNER)
        .values("args", "state", "queued_at", "started_at", "finished_at", "worker", "retries", "error")
        .first()
    )
    if row is None or len(row["args"]) != 3:
        raise compat.TaskResultDoesNotExist(result_id)
    module_path, args, kwargs = row["args"]
    task = registry.lookup(module_path)
    if task is None:
        raise compat.TaskResultDoesNotExist(f"{result_id}: Django task {module_path!r} is not registered here")
    status = STATUS[row["state"]]
    stored = _stored(result_id) if row["state"] in ("succeeded", "failed") else None
    if stored is not None and stored.state not in states.READY_STATES:
        # The ledger row finishes inside the task, just before Celery stores the outcome: until
        # the return value is readable the job counts as still running.
        status = compat.TaskResultStatus.RUNNING
    result = new_result(
        task,
        result_id,
        args,
        kwargs,
        backend=backend,
        status=status,
        enqueued_at=row["queued_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"] if status != compat.TaskResultStatus.RUNNING else None,
        # One entry per attempt: the ledger keeps the last worker and how often the job was retried.
        worker_ids=[row["worker"]] * (row["retries"] + 1) if row["worker"] else [],
    )
    if status == compat.TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", stored.result if stored is not None else None)
    elif status == compat.TaskResultStatus.FAILED:
        result.errors.append(error(stored, row["error"]))
    return result


def _stored(result_id: str) -> AsyncResult[Any] | None:
    """Celery's stored outcome of the job, ``None`` without a result backend."""
    outcome: AsyncResult[Any] = AsyncResult(result_id, app=celery.current_app)
    try:
        outcome.state  # noqa: B018  # reads the backend: a disabled one raises here
    except NotImplementedError:
        return None
    return outcome


def error(stored: AsyncResult[Any] | None, ledger_error: str) -> Any:
    """The failure as a ``TaskError``: Celery's stored exception, else the ledger's text."""
    if stored is not None and isinstance(stored.result, BaseException):
        exc = stored.result
        path = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return compat.TaskError(exception_class_path=path, traceback=str(stored.traceback or "") or ledger_error)
    # The ledger's error starts "ExcName: message": only a builtin exception's path is known from that.
    name = ledger_error.split(":", 1)[0]
    builtin = getattr(builtins, name, None)
    known = isinstance(builtin, type) and issubclass(builtin, BaseException)
    return compat.TaskError(exception_class_path=f"builtins.{name if known else 'Exception'}", traceback=ledger_error)
