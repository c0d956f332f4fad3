"""The Celery task base class that sends every submission through queueprio, and ``enqueue``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import celery
from celery.exceptions import TimeLimitExceeded
from celery.result import AsyncResult

from .broker.message import REPLACED

# The submission and worker paths are imported inside the methods, pointing down: they import
# the models, and this module must stay importable before Django's app registry is ready (a
# project may name PriorityTask as its app's ``task_cls``, or define a task in its celery.py).


if TYPE_CHECKING:
    # celery-types makes Task generic; Celery itself can be subscripted only from 5.7 on.
    TaskBase = celery.Task[Any, Any]
else:
    TaskBase = celery.Task


class PriorityTask(TaskBase):
    """Base class for prioritised tasks.

    **``priority=`` means queueprio's scale**, 1 (most urgent) to 10 (least urgent), in
    ``apply_async``, ``delay`` (through the admin/code defaults) and signatures alike —
    not Celery's raw AMQP 0–9/0–255. Every way of sending the task (``apply_async``,
    ``delay``, ``queueprio.enqueue``, a helper) validates, resolves, records and publishes
    through one path: :func:`queueprio.submission.submit.submit`.
    """

    #: Celery's own STARTED tracking runs before the claim, so a stale copy would overwrite a
    #: finished job's result; ``queueprio.worker.run.mark_started`` tracks the claiming copy instead.
    track_started = False

    #: The worker's main-process side of a job's message: it ends a dead run's lease at once.
    Request = "queueprio.worker.request:JobRequest"

    #: Default priority given in code at registration, on our scale. ``None`` falls through
    #: to ``QUEUEPRIO_DEFAULT_PRIORITY``. An admin override (TaskPriority) beats it.
    #: (Celery's own ``Task.priority`` attribute is deprecated and deliberately unused.)
    queueprio_priority: int | None = None

    @property
    def queueprio_task(self) -> bool:
        """The marker lower layers recognise a queueprio task by (they can't import this class).

        Celery's own tasks (``celery.*``: chord_unlock, accumulate, ...) stay plain Celery tasks
        when a project makes ``PriorityTask`` its app's ``task_cls``.
        """
        return not (self.name or "").startswith("celery.")

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        from .submission import retry, submit  # see the note at the top

        if not self.queueprio_task or self.app.conf.task_always_eager:
            # Eager runs in the caller's process: no broker, no priority, nothing to record.
            options = submit.celery_options(options)
            options.pop("priority", None)
            return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow, **options)
        options.update(link=link, link_error=link_error, shadow=shadow)
        running = self.app.current_worker_task
        if task_id is not None and running is not None and getattr(running.request, "id", None) == task_id:
            # The running job sends its own id again: Celery's retry(), or replace(). The job is
            # handed on when its run ends (queueprio.worker.followup), not now.
            kind = "replace" if getattr(running.request, REPLACED, False) else "retry"
            if getattr(running, "queueprio_task", False):
                retry.follow_up(kind, self, running, args, kwargs, producer=producer, options=options)
                return self.AsyncResult(task_id)
        result = submit.submit(self, args, kwargs, task_id=task_id, producer=producer, **options)
        # As Celery's send_task marks it: get() on an ignored result returns None at once
        # instead of waiting for a result that will never be stored. (A fresh job's result is
        # Celery's own, marked already; a joined duplicate's or a resent job's is not.)
        result.ignored = bool(options.get("ignore_result", self.ignore_result))
        return result

    def on_replace(self, sig: Any) -> Any:
        # Marks the request, so the apply_async that replace() makes is read as a hand-over.
        setattr(self.request, REPLACED, True)
        return super().on_replace(sig)

    def prepare_arguments(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Validate and normalise arguments before anything is recorded or published.

        Subclasses raise :class:`queueprio.InvalidArguments` to refuse a submission.
        """
        return args, kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.queueprio_task:
            return super().__call__(*args, **kwargs)
        from .worker.run import run_claimed  # see the note at the top

        return run_claimed(self, args, kwargs)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        # A hard time limit kills the process before run_claimed can record anything; Celery
        # then calls this in the worker's main process.
        if isinstance(exc, TimeLimitExceeded) and self.queueprio_task:
            from .worker.run import fail_after_hard_time_limit  # see the note at the top

            fail_after_hard_time_limit(task_id, self.name, exc)


def enqueue(
    task: PriorityTask | str,
    args: Any = (),
    kwargs: dict[str, Any] | None = None,
    *,
    priority: int | None = None,
    **options: Any,
) -> AsyncResult[Any]:
    """Submit ``task`` (a PriorityTask or its registered name) at ``priority`` (1 = most urgent)."""
    if isinstance(task, str):
        from .submission.submit import lookup_task  # see the note at the top

        task = lookup_task(task)  # type: ignore[assignment]
    return task.apply_async(args, kwargs, priority=priority, **options)  # type: ignore[union-attr]
