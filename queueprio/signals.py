"""Signal receivers: seed queueprio's tables after ``migrate``; wire a worker's queueprio parts when it starts."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import task_revoked, worker_init, worker_ready
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from .maintenance.due import DueStep
from .maintenance.schedule import ensure_all
from .maintenance.setup import seed_from_settings
from .registry import sync_task_priorities
from .worker import connections
from .worker.events import UnconfirmedEvents
from .worker.revoke import install_revoke_command, on_task_revoked

logger = logging.getLogger("queueprio")


@receiver(post_migrate, dispatch_uid="queueprio.seed_after_migrate")
def seed_after_migrate(sender: Any, app_config: Any = None, using: str = "default", **kwargs: Any) -> None:
    """Default priorities for registered tasks, the initial bands and quota, the beat entries."""
    if app_config is None or app_config.label != "queueprio":
        return
    created = sync_task_priorities()
    if created:
        logger.info("seeded %s task default priorities", created)
    seed_from_settings()
    for name in ensure_all(using):
        logger.info("created periodic task %r", name)


@worker_init.connect(dispatch_uid="queueprio.worker_init")
def wire_worker(sender: Any = None, **kwargs: Any) -> None:
    """Every worker publishes due jobs and recovers lapsed leases (``maintenance.due``), and records
    the revoke broadcasts it gets in the ledger (``worker.revoke``), and keeps its database
    connections per ``CONN_MAX_AGE`` (``worker.connections``) and publishes its events without
    confirms (``worker.events``)."""
    if sender is not None:
        sender.app.steps["consumer"].add(DueStep)
        sender.app.steps["consumer"].add(UnconfirmedEvents)
        connections.install(sender.app.conf)
    install_revoke_command()


@worker_ready.connect(dispatch_uid="queueprio.sync_on_worker_ready")
def sync_on_worker_ready(**kwargs: Any) -> None:
    # A converter added in code shows up in the admin as soon as a worker runs it.
    try:
        sync_task_priorities()
    except Exception:  # the worker must start even if the table isn't migrated yet
        logger.exception("could not sync task default priorities")


@task_revoked.connect(dispatch_uid="queueprio.task_revoked")
def record_revoked(
    sender: Any = None, request: Any = None, terminated: bool = False, expired: bool = False, **kwargs: Any
) -> None:
    """A worker dropped or terminated a revoked or expired job: the ledger says so too."""
    try:
        on_task_revoked(request, terminated, expired)
    except Exception:  # never break the worker's own revoke handling
        logger.exception("could not record a revoke in the ledger")
