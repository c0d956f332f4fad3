"""Folding ledger events into per-minute statistics: pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from queueprio.observability.aggregate import Accumulator, Stat, minute_floor, rejected_priority, seconds_between
from queueprio.observability.histogram import DURATION_BOUNDS, bucket_index

T = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("requested", "priority"),
    [("3", 3), ("10", 10), ("1", 1), ("", 0), ("0", 0), ("11", 0), ("2.5", 0), ("'3'", 0), ("True", 0), (" 4 ", 4)],
)
def test_rejected_priority__only_valid_integers_count(requested: str, priority: int) -> None:
    assert rejected_priority(requested) == priority


def test_minute_floor__drops_seconds() -> None:
    assert minute_floor(T + timedelta(seconds=59.9)) == T


def test_seconds_between__clock_skew_reads_as_zero() -> None:
    assert seconds_between(T, T - timedelta(seconds=1)) == 0.0


def test_accumulator__keys_events_by_minute_task_and_priority() -> None:
    acc = Accumulator()
    acc.submitted(T + timedelta(seconds=5), "a", 3)
    acc.submitted(T + timedelta(seconds=50), "a", 3)
    acc.submitted(T + timedelta(seconds=70), "a", 3)
    acc.started(T + timedelta(seconds=30), "b", 2, eligible_at=T)
    assert acc.stats[(T, "a", 3)].counts["submitted"] == 2
    assert acc.stats[(T + timedelta(minutes=1), "a", 3)].counts["submitted"] == 1
    wait = acc.stats[(T, "b", 2)].wait
    assert (wait.count, wait.total, wait.maximum) == (1, 30.0, 30.0)
    assert wait.buckets[bucket_index(DURATION_BOUNDS, 30.0)] == 1


def test_accumulator__finished_jobs_record_outcome_and_run_time() -> None:
    acc = Accumulator()
    acc.finished(T + timedelta(seconds=10), "a", 5, succeeded=True, started_at=T + timedelta(seconds=8))
    acc.finished(T + timedelta(seconds=20), "a", 5, succeeded=False, started_at=None)
    stat = acc.stats[(T, "a", 5)]
    assert (stat.counts["succeeded"], stat.counts["failed"]) == (1, 1)
    assert (stat.run.count, stat.run.total) == (1, 2.0)


def test_accumulator__totals_sum_over_minutes() -> None:
    acc = Accumulator()
    acc.rejected(T, "a", 0, "invalid_priority")
    acc.rejected(T + timedelta(minutes=3), "a", 0, "invalid_priority")
    acc.aged(T, "a", 7)
    totals = acc.totals()
    assert totals[("a", 0)].counts["rejected"] == 2
    assert totals[("a", 0)].rejection_reasons == {"invalid_priority": 2}
    assert totals[("a", 7)].counts["aged"] == 1


def test_stat__columns_round_trip() -> None:
    acc = Accumulator()
    acc.started(T, "a", 1, eligible_at=T - timedelta(seconds=2))
    acc.rejected(T, "a", 1, "queue_full")
    stat = acc.stats[(T, "a", 1)]

    class Row:
        pass

    row = Row()
    for name, value in stat.columns().items():
        setattr(row, name, value)
    again = Stat.from_columns(row)
    assert again.columns() == stat.columns()
