"""Errors a caller can get back from a submission; every one of them means nothing was published."""

from __future__ import annotations

from typing import Any


class QueueprioError(Exception):
    """Base class of every queueprio error."""


class Rejected(QueueprioError):
    """A submission was refused before anything was published; the refusal is stored.

    ``reason`` is one of :class:`queueprio.models.RejectionReason`'s values.
    """

    reason: str = "invalid_input"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.detail = detail


class InvalidPriority(Rejected, ValueError):
    """A priority that is not an ``int`` from 1 (most urgent) to 10 (least urgent)."""

    reason = "invalid_priority"

    def __init__(self, value: Any) -> None:
        super().__init__(
            f"invalid priority {value!r} ({type(value).__name__}): "
            "expected an int from 1 (most urgent) to 10 (least urgent)",
            value=repr(value),
        )
        self.value = value


class UnknownTask(Rejected, LookupError):
    """A task or converter name that is not registered."""

    reason = "unknown_task"


class InvalidArguments(Rejected, ValueError):
    """Arguments the task refuses before publishing (a bad path, a missing file, …)."""

    reason = "invalid_input"


class PathOutsideRoot(InvalidArguments):
    """A file path that resolves outside the configured root."""

    reason = "path_outside_root"


class QueueFull(Rejected):
    """A priority band is at its limit of queued jobs."""

    reason = "queue_full"


class QuotaExceeded(Rejected):
    """A caller went over its quota of urgent submissions."""

    reason = "quota_exceeded"


class PublishFailed(QueueprioError):
    """The ledger row was written but the broker did not take the message.

    The row is marked ``publish_failed``; the original error is chained as ``__cause__``.
    """

    def __init__(self, task_id: str, error: BaseException | None = None) -> None:
        # With one argument it is the message: how Celery rebuilds an exception from a stored result.
        super().__init__(task_id if error is None else f"publishing task {task_id} failed: {error}")
        self.task_id = task_id


def lost_too_often(losses: int) -> str:
    """The error of a job given up after its runs were lost ``losses`` times; the same whichever
    saw the last loss first (the redelivered copy in a worker, or the scheduler's lease recovery)."""
    return (
        f"WorkerLost: the run of this job was lost {losses} times "
        "(its worker process died or stopped renewing its lease); not running it again"
    )
