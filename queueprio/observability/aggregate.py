"""Pure accumulation of ledger events into per-minute, per-task, per-priority statistics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..priority import LEAST_URGENT, MOST_URGENT, NO_PRIORITY
from .histogram import DURATION_BOUNDS, bucket_index, empty_counts, merge

#: Priority a rejection is counted at when it had no valid one (see ``models_metrics``).

COUNTERS = ("submitted", "started", "succeeded", "failed", "rejected", "aged")


def minute_floor(when: datetime) -> datetime:
    """The start of the minute ``when`` falls in."""
    return when.replace(second=0, microsecond=0)


def seconds_between(start: datetime, end: datetime) -> float:
    # Clocks of different hosts can disagree a little; a negative duration means "instant".
    return max(0.0, (end - start).total_seconds())


def rejected_priority(requested: str) -> int:
    """The priority a stored rejection asked for (``Rejection.requested_priority`` is a repr)."""
    text = requested.strip()
    if not text.isdigit():  # missing, a float, a quoted string, True, …: not a priority
        return NO_PRIORITY
    value = int(text)
    return value if MOST_URGENT <= value <= LEAST_URGENT else NO_PRIORITY


@dataclass
class Durations:
    """Count, sum, max and histogram of one kind of duration."""

    count: int = 0
    total: float = 0.0
    maximum: float | None = None
    buckets: list[int] = field(default_factory=empty_counts)

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.maximum = seconds if self.maximum is None else max(self.maximum, seconds)
        self.buckets[bucket_index(DURATION_BOUNDS, seconds)] += 1

    def add(self, other: Durations) -> None:
        self.count += other.count
        self.total += other.total
        if other.maximum is not None:
            self.maximum = other.maximum if self.maximum is None else max(self.maximum, other.maximum)
        self.buckets = merge(self.buckets, other.buckets)


@dataclass
class Stat:
    """The counters and durations of one key (a minute × task × priority, or any sum of them)."""

    counts: Counter[str] = field(default_factory=Counter)
    rejection_reasons: Counter[str] = field(default_factory=Counter)
    wait: Durations = field(default_factory=Durations)
    run: Durations = field(default_factory=Durations)

    def add(self, other: Stat) -> None:
        self.counts.update(other.counts)
        self.rejection_reasons.update(other.rejection_reasons)
        self.wait.add(other.wait)
        self.run.add(other.run)

    def columns(self) -> dict[str, Any]:
        """Field values for ``MinuteStat``/``MetricTotal`` (the ``*_max`` ones only exist on the former)."""
        return {
            **{name: self.counts[name] for name in COUNTERS},
            "rejection_reasons": dict(self.rejection_reasons),
            "wait_count": self.wait.count,
            "wait_sum": self.wait.total,
            "wait_max": self.wait.maximum,
            "wait_buckets": list(self.wait.buckets),
            "run_count": self.run.count,
            "run_sum": self.run.total,
            "run_max": self.run.maximum,
            "run_buckets": list(self.run.buckets),
        }

    @classmethod
    def from_columns(cls, row: Any) -> Stat:
        """The inverse of :meth:`columns`, from a model instance (``*_max`` optional)."""
        stat = cls(counts=Counter({name: getattr(row, name) for name in COUNTERS}))
        stat.rejection_reasons.update(row.rejection_reasons or {})
        for kind in ("wait", "run"):
            durations = getattr(stat, kind)
            durations.count = getattr(row, f"{kind}_count")
            durations.total = getattr(row, f"{kind}_sum")
            durations.maximum = getattr(row, f"{kind}_max", None)
            durations.buckets = list(getattr(row, f"{kind}_buckets") or empty_counts())
        return stat


Key = tuple[datetime, str, int]


@dataclass
class Accumulator:
    """Ledger events folded into one :class:`Stat` per (minute, task, priority)."""

    stats: dict[Key, Stat] = field(default_factory=dict)

    def _stat(self, at: datetime, task: str, priority: int) -> Stat:
        return self.stats.setdefault((minute_floor(at), task, priority), Stat())

    def submitted(self, at: datetime, task: str, priority: int) -> None:
        self._stat(at, task, priority).counts["submitted"] += 1

    def started(self, at: datetime, task: str, priority: int, *, eligible_at: datetime) -> None:
        stat = self._stat(at, task, priority)
        stat.counts["started"] += 1
        stat.wait.observe(seconds_between(eligible_at, at))

    def finished(self, at: datetime, task: str, priority: int, *, succeeded: bool, started_at: datetime | None) -> None:
        stat = self._stat(at, task, priority)
        stat.counts["succeeded" if succeeded else "failed"] += 1
        if started_at is not None:
            stat.run.observe(seconds_between(started_at, at))

    def rejected(self, at: datetime, task: str, priority: int, reason: str) -> None:
        stat = self._stat(at, task, priority)
        stat.counts["rejected"] += 1
        stat.rejection_reasons[reason] += 1

    def aged(self, at: datetime, task: str, priority: int) -> None:
        self._stat(at, task, priority).counts["aged"] += 1

    def totals(self) -> dict[tuple[str, int], Stat]:
        """The same events summed over minutes: what to add to the lifetime totals."""
        out: dict[tuple[str, int], Stat] = {}
        for (_, task, priority), stat in self.stats.items():
            out.setdefault((task, priority), Stat()).add(stat)
        return out
