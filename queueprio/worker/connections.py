"""A worker's database connections live as a web process's do: per ``CONN_MAX_AGE``.

Celery's Django fixup closes every database connection before and after every task (Celery 5.5
to 5.7; ``CONN_MAX_AGE`` is ignored unless ``CELERY_DB_REUSE_MAX`` is set). A queueprio job
touches the ledger in two transactions, so on SQLite reopening the file and re-running its
PRAGMAs cost more than both (``bench/worker.py``; docs/benchmarks.md), and on PostgreSQL a new
connection is a fork on the server per job.

``configure(app)`` therefore sets ``CELERY_DB_REUSE_MAX`` to :data:`DJANGO_LIFETIME` (unless the
project set it), which stops the fixup's per-task close, and :func:`install` gives each task what
Django gives each request: ``close_old_connections()`` before and after it, which closes a
connection that is older than ``CONN_MAX_AGE`` (always, with Django's default 0: then nothing
changes), broken, or left in a transaction, and runs ``CONN_HEALTH_CHECKS``. A fork still gets
fresh connections: the fixup's ``worker_process_init`` handler closes them regardless.
"""

from __future__ import annotations

from typing import Any

from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

#: The ``CELERY_DB_REUSE_MAX`` that ``configure`` sets: so large the fixup never counts to it.
#: (A project's own value is left to Celery: it then closes every that many tasks.)
DJANGO_LIFETIME = 2**62

#: Celery reads it by this name (``DjangoWorkerFixup``), whatever the namespace.
SETTING = "CELERY_DB_REUSE_MAX"


def install(conf: Any) -> bool:
    """Close old connections around each task if the app left connection reuse to queueprio."""
    if conf.get(SETTING) != DJANGO_LIFETIME:
        return False
    task_prerun.connect(_around_task, dispatch_uid="queueprio.connections.prerun")
    task_postrun.connect(_around_task, dispatch_uid="queueprio.connections.postrun")
    return True


def _around_task(sender: Any = None, **kwargs: Any) -> None:
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # an eager call runs inside its caller's request or transaction
    close_old_connections()
