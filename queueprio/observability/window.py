"""The recent past: rolled-up statistics over a window, and rejections and aging steps as recorded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Avg, Count

from ..models import AgingStep, MetricTotal, MinuteStat, Rejection
from .aggregate import Stat
from .histogram import DURATION_BOUNDS, quantile_from_histogram

QUANTILES = (0.5, 0.95)


def merge_by(rows: Iterable[object], key: str) -> dict[Any, Stat]:
    """Sum stored rows (``MinuteStat``/``MetricTotal``) into one :class:`Stat` per value of ``key``."""
    out: dict[Any, Stat] = {}
    for row in rows:
        out.setdefault(getattr(row, key), Stat()).add(Stat.from_columns(row))
    return dict(sorted(out.items()))


def by_priority(since: datetime) -> dict[int, Stat]:
    """Rolled-up minutes since ``since``, summed over tasks, per priority."""
    return merge_by(MinuteStat.objects.filter(minute__gte=since), "priority")


def by_minute(since: datetime) -> dict[datetime, Stat]:
    """Rolled-up minutes since ``since``, summed over tasks and priorities, per minute."""
    return merge_by(MinuteStat.objects.filter(minute__gte=since), "minute")


def totals_by_priority() -> dict[int, Stat]:
    """Lifetime totals per priority (summed over tasks)."""
    return merge_by(MetricTotal.objects.all(), "priority")


def wait_quantiles(stat: Stat, quantiles: Sequence[float] = QUANTILES) -> dict[float, float | None]:
    """Estimated wait quantiles (seconds) of a :class:`Stat`; ``None`` when nothing started."""
    return {
        q: quantile_from_histogram(DURATION_BOUNDS, stat.wait.buckets, q, maximum=stat.wait.maximum) for q in quantiles
    }


@dataclass(frozen=True)
class AgingSummary:
    reason: str
    from_priority: int
    to_priority: int
    steps: int
    average_wait: float


def rejections_by_reason(since: datetime) -> list[tuple[str, int]]:
    """Rejections recorded since ``since`` per reason, most frequent first (read live, not rolled up)."""
    counts = Counter(dict(Rejection.objects.filter(at__gte=since).values_list("reason").annotate(n=Count("pk"))))
    return counts.most_common()


def aging_steps(since: datetime) -> list[AgingSummary]:
    """Aging steps (and other republishes) since ``since``, per reason and priority change."""
    rows = (
        AgingStep.objects.filter(at__gte=since)
        .values("reason", "from_priority", "to_priority")
        .annotate(steps=Count("pk"), average_wait=Avg("waited_seconds"))
        .order_by("reason", "from_priority", "to_priority")
    )
    return [AgingSummary(**row) for row in rows]
