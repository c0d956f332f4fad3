"""Wait-time quantiles over a window: exact from the ledger when it still holds every job, else estimated.

The ledger keeps every job for ``QUEUEPRIO_JOB_RETENTION_DAYS`` (30), so for the dashboard's
windows (an hour to a day) it can usually give exact quantiles: each job's wait is
``started_at - max(queued_at, eta)``, sorted, read at the nearest rank. When the window is
longer than the retention, or more than :data:`EXACT_LIMIT` jobs started in it (reading them
would make the page slow), the quantiles are estimated from the rolled-up per-minute
histograms instead, and each estimate comes with the bucket the true value lies in: the
estimate's error is at most that bucket's width.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count

from ..conf import settings
from ..models import Job, JobState
from .aggregate import Stat, seconds_between
from .histogram import DURATION_BOUNDS, quantile_bucket, quantile_from_histogram
from .units import format_duration
from .window import QUANTILES, by_priority

#: Most jobs read one by one for exact quantiles; beyond it the histograms answer.
EXACT_LIMIT = 50_000


@dataclass(frozen=True)
class Quantile:
    """One quantile: exact, or an estimate with the bucket ``(lower, upper]`` the true value lies in."""

    value: float | None
    exact: bool
    lower: float | None = None
    upper: float | None = None

    @property
    def text(self) -> str:
        if self.value is None:
            return "–"
        return format_duration(self.value) if self.exact else f"≈ {format_duration(self.value)}"

    @property
    def bucket(self) -> str:
        """Where an estimate's true value lies, e.g. ``10.0 s–15.0 s``; empty for an exact value."""
        if self.exact or self.value is None or self.lower is None:
            return ""
        if self.upper is None:
            return f"over {format_duration(self.lower)}"
        return f"{format_duration(self.lower)}–{format_duration(self.upper)}"


@dataclass(frozen=True)
class PriorityWaits:
    priority: int
    started: int
    succeeded: int
    failed: int
    quantiles: dict[float, Quantile]
    longest: float | None

    @property
    def longest_text(self) -> str:
        return format_duration(self.longest)

    @property
    def p50(self) -> Quantile:
        return self.quantiles[0.5]

    @property
    def p95(self) -> Quantile:
        return self.quantiles[0.95]


@dataclass(frozen=True)
class Waits:
    """Per-priority waits over a window, and how they were obtained."""

    rows: list[PriorityWaits] = field(default_factory=list)
    exact: bool = True
    started: int = 0
    #: Why the quantiles are estimates (empty when exact).
    why_estimated: str = ""


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values: the smallest value with at least ``q`` of them at or below it."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def from_ledger(since: datetime, until: datetime, *, limit: int | None = None) -> Waits | str:
    """Exact waits of the jobs that started in ``[since, until)``, or why they can't be had."""
    limit = EXACT_LIMIT if limit is None else limit
    if until - since > timedelta(days=float(settings.JOB_RETENTION_DAYS)):
        return "the window is longer than the ledger keeps finished jobs (QUEUEPRIO_JOB_RETENTION_DAYS)"
    started = Job.objects.order_by().filter(started_at__gte=since, started_at__lt=until)
    count = started.count()
    if count > limit:
        return f"more than {limit:,} jobs started in the window"
    waits: dict[int, list[float]] = defaultdict(list)
    for priority, queued_at, eta, started_at in started.values_list(
        "effective_priority", "queued_at", "eta", "started_at"
    ):
        if started_at is not None:  # excluded by the filter; this tells the type checker
            waits[priority].append(seconds_between(max(queued_at, eta) if eta else queued_at, started_at))
    outcomes: dict[tuple[int, str], int] = {
        (row["effective_priority"], row["state"]): row["n"]
        for row in Job.objects.order_by()
        .filter(finished_at__gte=since, finished_at__lt=until, state__in=[JobState.SUCCEEDED, JobState.FAILED])
        .values("effective_priority", "state")
        .annotate(n=Count("pk"))
    }
    rows = []
    for priority in sorted(set(waits) | {p for p, _ in outcomes}):
        ordered = sorted(waits.get(priority, []))
        quantiles = {q: Quantile(nearest_rank(ordered, q) if ordered else None, exact=True) for q in QUANTILES}
        rows.append(
            PriorityWaits(
                priority=priority,
                started=len(ordered),
                succeeded=outcomes.get((priority, JobState.SUCCEEDED), 0),
                failed=outcomes.get((priority, JobState.FAILED), 0),
                quantiles=quantiles,
                longest=ordered[-1] if ordered else None,
            )
        )
    return Waits(rows=rows, exact=True, started=count)


def estimate(stat: Stat, q: float) -> Quantile:
    value = quantile_from_histogram(DURATION_BOUNDS, stat.wait.buckets, q, maximum=stat.wait.maximum)
    bucket = quantile_bucket(DURATION_BOUNDS, stat.wait.buckets, q)
    lower, upper = bucket if bucket is not None else (None, None)
    return Quantile(value, exact=False, lower=lower, upper=upper)


def from_rollup(since: datetime, why: str) -> Waits:
    """Estimated waits from the rolled-up minutes since ``since`` (they lag by a minute or two)."""
    rows = [
        PriorityWaits(
            priority=priority,
            started=stat.counts["started"],
            succeeded=stat.counts["succeeded"],
            failed=stat.counts["failed"],
            quantiles={q: estimate(stat, q) for q in QUANTILES},
            longest=stat.wait.maximum,
        )
        for priority, stat in by_priority(since).items()
        if priority  # rejections without a valid priority have no waits or runs
    ]
    return Waits(rows=rows, exact=False, started=sum(row.started for row in rows), why_estimated=why)


def waits(since: datetime, until: datetime) -> Waits:
    """Exact when the ledger can say, else estimated (with each estimate's bucket)."""
    exact = from_ledger(since, until)
    return exact if isinstance(exact, Waits) else from_rollup(since, exact)
