"""First-run setup after ``migrate``: the bands, the quota and the task table, from settings and code."""

from __future__ import annotations

from ..conf import settings
from ..models import Band, UrgentQuota


def seed_from_settings() -> None:
    """Create the bands and the quota from settings the first time (the admin owns them after)."""
    if not Band.objects.exists():
        Band.objects.bulk_create(
            Band(name=name, most_urgent=lo, least_urgent=hi, max_queued=limit, soft_time_limit=soft, time_limit=hard)
            for name, lo, hi, limit, soft, hard in settings.BANDS
        )
    if not UrgentQuota.objects.exists():
        UrgentQuota.objects.create(
            limit=settings.QUOTA_LIMIT,
            max_priority=settings.QUOTA_MAX_PRIORITY,
            window_seconds=settings.QUOTA_WINDOW_SECONDS,
            policy=settings.QUOTA_POLICY,
            demote_to=settings.QUOTA_DEMOTE_TO,
        )
