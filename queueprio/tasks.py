"""The Celery task base class that sends every submission through queueprio."""

from __future__ import annotations

from typing import Any

import celery
from celery.result import AsyncResult


class PriorityTask(celery.Task):
    """Base class for prioritised tasks.

    **``priority=`` means queueprio's scale**, 1 (most urgent) to 10 (least urgent), in
    ``apply_async``, ``delay`` (through the admin/code defaults) and signatures alike —
    not Celery's raw AMQP 0–9/0–255. Every way of sending the task (``apply_async``,
    ``delay``, ``queueprio.enqueue``, a helper) validates, resolves, records and publishes
    through one path: :func:`queueprio.submit.submit`.
    """

    #: Default priority given in code at registration, on our scale. ``None`` falls through
    #: to ``QUEUEPRIO_DEFAULT_PRIORITY``. An admin override (TaskPriority) beats it.
    #: (Celery's own ``Task.priority`` attribute is deprecated and deliberately unused.)
    queueprio_priority: int | None = None

    #: Celery's own STARTED tracking runs before the claim, so a stale copy would overwrite a
    #: finished job's result; ``queueprio.execution.mark_started`` tracks the claiming copy instead.
    track_started = False

    def apply_async(  # type: ignore[override]
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> AsyncResult:
        from .submit import requeue_for_retry, submit

        if task_id is not None and options.get("retries") and task_id == self.request.id:
            # Celery's retry(): same task id, a new message. Keep the job's row and priority.
            return requeue_for_retry(self, task_id, args, kwargs, producer=producer, options=options)
        return submit(
            self,
            args,
            kwargs,
            task_id=task_id,
            producer=producer,
            link=link,
            link_error=link_error,
            shadow=shadow,
            **options,
        )

    def prepare_arguments(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Validate and normalise arguments before anything is recorded or published.

        Subclasses raise :class:`queueprio.InvalidArguments` to refuse a submission.
        """
        return args, kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .execution import run_claimed

        return run_claimed(self, args, kwargs)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        # A hard time limit kills the process before run_claimed can record anything; Celery
        # then calls this in the worker's main process.
        from celery.exceptions import TimeLimitExceeded

        if isinstance(exc, TimeLimitExceeded):
            from .execution import fail_after_hard_time_limit

            fail_after_hard_time_limit(task_id, self.name, exc)


# --- maintenance tasks, run by beat (django-celery-beat) --------------------------------
# Plain tasks, not PriorityTask: they keep no ledger rows of their own. The router sends
# them at the top AMQP priority so a backlog can't starve the sweep that prevents starvation.


@celery.shared_task(name="queueprio.age_waiting_jobs", queueprio_maintenance=True, ignore_result=True)
def age_waiting_jobs() -> dict[str, int]:
    """Republish waiting jobs at a better priority (see ``queueprio.aging``)."""
    from dataclasses import asdict

    from .aging import sweep

    return asdict(sweep())


@celery.shared_task(name="queueprio.prune", queueprio_maintenance=True, ignore_result=True)
def prune() -> dict[str, int]:
    """Delete rejections and finished jobs past their retention (see ``queueprio.retention``)."""
    from .retention import prune as prune_rows

    return prune_rows()
