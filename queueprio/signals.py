"""Signal handlers: seed queueprio's tables after ``migrate``, and the task table when a worker starts."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from .maintenance.schedule import ensure_all
from .maintenance.setup import seed_from_settings
from .registry import sync_task_priorities

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


@worker_ready.connect(dispatch_uid="queueprio.sync_on_worker_ready")
def sync_on_worker_ready(**kwargs: Any) -> None:
    # A converter added in code shows up in the admin as soon as a worker runs it.
    try:
        sync_task_priorities()
    except Exception:  # the worker must start even if the table isn't migrated yet
        logger.exception("could not sync task default priorities")
