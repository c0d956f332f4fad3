"""The worker's main-process view of a queueprio job's message (``PriorityTask.Request``).

Celery runs this in the worker's main process, not in the pool process that runs the body. It
sees what the body's process can't: that process dying. Then the run's lease ends at once, so
the copy RabbitMQ hands out again may run the job without waiting for the lease to pass
(``worker.lease``: a lease is what stops a redelivered copy while the first run is alive).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from billiard.einfo import ExceptionWithTraceback  # type: ignore[attr-defined]  # not in celery-types
from billiard.exceptions import WorkerLostError
from celery.worker.request import Request
from django.db import close_old_connections
from django.utils import timezone

from ..broker.protocol import HEADER_GENERATION
from ..models import Job
from .revoke import release_sqlite

logger = logging.getLogger("queueprio")


class JobRequest(Request):
    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> None:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, WorkerLostError | SystemExit | KeyboardInterrupt):
            self._end_lease()
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def _end_lease(self) -> None:
        headers: dict[str, Any] = getattr(self, "_request_dict", None) or {}
        generation = headers.get(HEADER_GENERATION)
        if generation is None:
            return
        try:
            close_old_connections()
            # Only this worker's own run (the claim recorded its name): another host may hold the job now.
            ended = timezone.now() - timedelta(seconds=1)
            Job.objects.end_lease(str(self.id), int(generation), ended, worker=self.hostname or "")
        except Exception:  # the redelivered copy then waits for the lease to pass instead
            logger.exception("could not end the lease of task_id=%s", self.id)
        finally:
            release_sqlite()
