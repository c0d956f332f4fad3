"""Cancel jobs for good: the ledger first, then Celery's revoke to the workers that are up."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import celery

from ..models import JobState
from ..worker.revoke import end_in_ledger

logger = logging.getLogger("queueprio")


def revoke(task_ids: str | Iterable[str], *, terminate: bool = False, signal: str | None = None) -> int:
    """Cancel jobs by task id; returns how many were waiting (scheduled or queued) and now never run.

    A waiting job ends ``cancelled`` at once and its band place is given back; no copy of it runs,
    whatever the workers remember. A job already running keeps running (Celery's meaning of a
    revoke), unless ``terminate=True``: then its process is killed (``signal``, default
    ``SIGTERM``) and it ends ``cancelled``. The caller's ``AsyncResult`` says ``REVOKED``.
    """
    ids = [task_ids] if isinstance(task_ids, str) else list(task_ids)
    cancelled = end_in_ledger(ids, JobState.CANCELLED, reason="revoked (queueprio.revoke)")
    celery.current_app.control.revoke(ids, terminate=terminate, signal=signal or "SIGTERM")
    return len(cancelled)
