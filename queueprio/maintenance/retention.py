"""Pruning: delete old rejections and finished ledger rows in small batches, each its own short transaction."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from ..conf import settings
from ..models import Job, Rejection

logger = logging.getLogger("queueprio")


def delete_in_batches(queryset: models.QuerySet[Any], *, batch_size: int) -> int:
    """Delete ``queryset`` a batch of primary keys at a time, so no lock is held for long."""
    deleted = 0
    while True:
        with transaction.atomic():
            pks = list(queryset.values_list("pk", flat=True)[:batch_size])
            if not pks:
                return deleted
            queryset.model.objects.filter(pk__in=pks).delete()
        deleted += len(pks)


def prune() -> dict[str, int]:
    now = timezone.now()
    size = int(settings.PRUNE_BATCH_SIZE)
    counts = {
        "rejections": delete_in_batches(
            Rejection.objects.older_than(now - timedelta(days=settings.REJECTION_RETENTION_DAYS)), batch_size=size
        ),
        "jobs": delete_in_batches(
            Job.objects.finished().filter(finished_at__lt=now - timedelta(days=settings.JOB_RETENTION_DAYS)),
            batch_size=size,
        ),
    }
    if any(counts.values()):
        logger.info("pruned rejections=%s jobs=%s", counts["rejections"], counts["jobs"])
    return counts
