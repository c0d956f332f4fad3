"""The worker's main-process view of a queueprio job's message (``PriorityTask.Request``).

Celery runs this in the worker's main process, not in the pool process that runs the body. It
sees what the body's process can't: that process dying. Then the run's lease ends at once, so
the copy RabbitMQ hands out again may run the job without waiting for the lease to pass
(``worker.lease``: a lease is what stops a redelivered copy while the first run is alive).

And it drops revoked and expired messages. Celery stores ``REVOKED`` for each one it drops; a
queueprio job can have several copies (aging, recovery), and its ``REVOKED`` may already be
stored by whoever ended its row (``worker.revoke.end_in_ledger``). Stored twice, a chord member's
revoke would count twice against the chord (django-celery-results' ``ChordCounter``) and the
chord would never run its body. So a drop stores it only while the ledger says the job is still
waiting (the drop is what ends it) or has no row (a message sent around queueprio).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from billiard.einfo import ExceptionWithTraceback  # type: ignore[attr-defined]  # not in celery-types
from billiard.exceptions import WorkerLostError
from celery import signals
from celery.worker import state
from celery.worker.request import Request
from django.db import close_old_connections
from django.utils import timezone

from ..broker.protocol import HEADER_GENERATION
from ..models import WAITING_STATES, Job, JobState
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

    # Celery's private step (celery/worker/request.py, 5.5-5.7), which celery-types doesn't declare.
    def _announce_revoked(self, reason: Any, terminated: Any, signum: Any, expired: Any) -> None:
        if terminated or self._row_waiting():
            super()._announce_revoked(reason, terminated, signum, expired)  # type: ignore[misc]
            return
        # Celery's own steps but the store: this job's REVOKED (or its outcome) is stored already.
        state.task_ready(self)
        self.send_event("task-revoked", terminated=terminated, signum=signum, expired=expired)
        self.acknowledge()
        self._already_revoked = True
        context: Any = getattr(self, "_context", None)
        signals.task_revoked.send(self.task, request=context, terminated=terminated, signum=signum, expired=expired)

    def _row_waiting(self) -> bool:
        """Does the ledger say this job is still waiting (or not know it)? True when unsure."""
        try:
            close_old_connections()
            row = Job.objects.filter(task_id=str(self.id)).values_list("state", flat=True).first()
        except Exception:
            logger.exception("could not read the ledger row of revoked task_id=%s", self.id)
            return True
        finally:
            release_sqlite()
        return row is None or row in (*WAITING_STATES, JobState.SCHEDULED)

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
