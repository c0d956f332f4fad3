"""Revoke and expiry, made durable: the ledger records them, so no copy runs later, whatever restarts.

Celery keeps revoked task ids in each worker's memory: a worker that was down when the revoke
was broadcast, or restarted since, would run the job. queueprio records the revoke on the row
(``cancelled``, its band place given back); every claim checks the row, so no copy of the job
ever runs afterwards. Three ways in, all ending in :func:`end_in_ledger`:

* ``queueprio.revoke(task_id)`` and the admin's *Cancel* (``operations.cancel``) write the row
  first, then broadcast Celery's revoke;
* ``AsyncResult.revoke()`` / ``app.control.revoke()`` reach every worker that is up: each one
  records it (:func:`install_revoke_command`, the worker's ``revoke`` control command);
* a worker that revokes or expires a message itself (``task_revoked``: the id was in its revoked
  set, ``expires`` passed, or ``terminate=True`` killed the run) records that (:func:`on_task_revoked`).

What can't be covered: a plain ``app.control.revoke()`` while no worker is up reaches nobody;
the job then runs when a worker starts. ``queueprio.revoke`` has no such gap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import celery
from celery.utils.functional import maybe_list
from celery.worker.control import Panel
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from ..broker.outcome import store_revoked
from ..models import Job, JobState

logger = logging.getLogger("queueprio")


def end_in_ledger(
    task_ids: Iterable[str], state: str, *, reason: str, running: bool = False, store: bool = True
) -> list[str]:
    """End jobs that have not run (``cancelled`` or ``expired``), giving their band places back;
    with ``running``, also a started one (its run was terminated). Returns the ids that ended.

    Each one that ended here also gets Celery's ``REVOKED`` result (``store``), as a worker stores
    it when it drops a revoked or expired message: the job may have no message left to drop (a
    scheduled job, a worker restarted since the revoke), and its caller, or a chord waiting for
    it, would wait for ever. Only the caller that ended the row stores it, so a broadcast that
    reaches several workers stores it once.
    """
    now, ended = timezone.now(), []
    for task_id in task_ids:
        with transaction.atomic():  # the row and its band's counter change together
            done = Job.objects.end_waiting(task_id, state, error=reason, now=now)
            if not done and running:
                done = Job.objects.end_running(task_id, state, error=reason, now=now)
        if done:
            ended.append(task_id)
            logger.info("%s task_id=%s: %s", state, task_id, reason)
    if store and ended:
        app = celery.current_app
        for job in Job.objects.filter(task_id__in=ended):
            store_revoked(app, job, reason)
    return ended


def release_sqlite() -> None:
    """Close this thread's SQLite connection after a write in the worker's main process: the prefork
    pool forks that process, and SQLite must never see a connection carried across a fork (a child
    closing it could take the database's locks from under the parent). PostgreSQL's stay open."""
    if connection.vendor == "sqlite":
        connection.close()


def on_task_revoked(request: Any, terminated: bool, expired: bool, reason: str | None = "") -> None:
    """Celery's ``task_revoked`` signal (the worker's main process)."""
    if request is None or not getattr(request, "id", None):
        return
    state = JobState.EXPIRED if expired else JobState.CANCELLED
    why = "expired before it ran" if expired else ("terminated by a revoke" if terminated else "revoked")
    close_old_connections()
    try:
        # Celery stores this revoke's result itself.
        end_in_ledger([str(request.id)], state, reason=why, running=terminated, store=False)
    finally:
        release_sqlite()


def install_revoke_command() -> None:
    """Wrap the worker's ``revoke`` control command so that a broadcast revoke is recorded too."""
    original = Panel.data.get("revoke")
    if original is None or getattr(original, "queueprio", False):
        return

    def revoke(state: Any, task_id: Any, terminate: bool = False, signal: Any = None, **kwargs: Any) -> Any:
        try:
            close_old_connections()
            ids = [str(i) for i in maybe_list(task_id) or []]
            end_in_ledger(ids, JobState.CANCELLED, reason="revoked (app.control.revoke)")
        except Exception:  # the revoke itself must still reach Celery's own handling
            logger.exception("could not record a revoke in the ledger")
        finally:
            release_sqlite()
        return original(state, task_id, terminate=terminate, signal=signal, **kwargs)

    revoke.queueprio = True  # type: ignore[attr-defined]
    Panel.data["revoke"] = revoke
