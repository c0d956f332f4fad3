"""The queue as it stands: queued jobs per priority and per band, read from the ledger.

The ledger, not the broker, is the truth for queued jobs: a broker queue also holds
stale copies of aged jobs (see ``queueprio.worker``) and knows nothing of bands.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce

from ..conf import settings
from ..models import Band, BandSample, DepthSample, Job
from ..priority import LEAST_URGENT, MOST_URGENT

PRIORITIES = tuple(range(MOST_URGENT, LEAST_URGENT + 1))

#: (name, most urgent, least urgent)
BandRange = tuple[str, int, int]


@dataclass(frozen=True)
class Queued:
    """Queued jobs of one priority or band, and since when the oldest eligible one has waited."""

    name: str
    queued: int
    oldest_since: datetime | None

    def oldest_wait(self, now: datetime) -> float | None:
        return None if self.oldest_since is None else max(0.0, (now - self.oldest_since).total_seconds())


def band_ranges() -> list[BandRange]:
    """The bands as edited in the admin, or the configured initial ones before they are seeded."""
    rows = list(Band.objects.order_by("most_urgent").values_list("name", "most_urgent", "least_urgent"))
    return rows or [(name, most, least) for name, most, least, *_ in settings.BANDS]


def band_of(priority: int, ranges: Sequence[BandRange]) -> str:
    for name, most, least in ranges:
        if most <= priority <= least:
            return name
    return ""


def _queued(now: datetime, *group_by: str) -> Iterable[dict[str, Any]]:
    """Queued jobs grouped by ``group_by``: how many, and the oldest eligible (ETA passed) one."""
    eligible = Q(eta__isnull=True) | Q(eta__lte=now)
    rows: Iterable[dict[str, Any]] = (
        Job.objects.queued()
        .values(*group_by)
        .annotate(queued=Count("pk"), oldest=Min(Coalesce("eta", "queued_at"), filter=eligible))
        .order_by()
    )
    return rows


def by_priority(now: datetime) -> list[Queued]:
    """One entry per priority 1…10 (zeros included), by effective priority."""
    found = {row["effective_priority"]: row for row in _queued(now, "effective_priority")}
    return [
        Queued(str(p), found[p]["queued"], found[p]["oldest"]) if p in found else Queued(str(p), 0, None)
        for p in PRIORITIES
    ]


def fold_bands(rows: Iterable[dict[str, Any]], ranges: Sequence[BandRange]) -> list[Queued]:
    """Sum rows of (band, requested_priority, queued, oldest) into one entry per band.

    A job counts in the band whose place it holds (``band``, by key: an admin's priority change
    can move it), else the one it was admitted to (``band_name``); a row without either is placed
    by its requested priority.
    """
    queued: dict[str, int] = {name: 0 for name, _, _ in ranges}
    oldest: dict[str, datetime | None] = dict.fromkeys(queued)
    for row in rows:
        name = row.get("band__name") or row["band_name"] or band_of(row["requested_priority"], ranges) or "?"
        queued[name] = queued.get(name, 0) + row["queued"]
        if row["oldest"] is not None and (oldest.get(name) is None or row["oldest"] < oldest[name]):
            oldest[name] = row["oldest"]
    return [Queued(name, count, oldest.get(name)) for name, count in queued.items()]


def by_band(now: datetime) -> list[Queued]:
    return fold_bands(_queued(now, "band__name", "band_name", "requested_priority"), band_ranges())


def sample(now: datetime) -> None:
    """Store the current depth per priority and per band (one row each) for history."""
    DepthSample.objects.bulk_create(
        DepthSample(at=now, priority=int(q.name), queued=q.queued, oldest_queued_at=q.oldest_since)
        for q in by_priority(now)
    )
    BandSample.objects.bulk_create(
        BandSample(at=now, band=q.name[:32], queued=q.queued, oldest_queued_at=q.oldest_since) for q in by_band(now)
    )
