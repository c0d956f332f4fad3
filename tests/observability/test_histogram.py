"""Fixed-bucket histograms: bucketing and quantile estimates, table-driven."""

from __future__ import annotations

import pytest

from queueprio.observability.histogram import (
    DURATION_BOUNDS,
    bucket_index,
    cumulative,
    empty_counts,
    merge,
    quantile_from_histogram,
)

BOUNDS = (1.0, 2.0, 4.0)


@pytest.mark.parametrize(
    ("counts", "q", "maximum", "expected"),
    [
        # Nothing counted: no estimate at all, not zero.
        ([0, 0, 0, 0], 0.5, None, None),
        # Everything in the first bucket (0, 1]: linear from 0.
        ([10, 0, 0, 0], 0.5, None, 0.5),
        ([10, 0, 0, 0], 1.0, None, 1.0),
        # Half below 1, half in (1, 2]: the median sits on the boundary.
        ([5, 5, 0, 0], 0.5, None, 1.0),
        # The p95 of 100 values, 90 ≤ 1 s and 10 in (2, 4]: rank 95 is halfway into (2, 4].
        ([90, 0, 10, 0], 0.95, None, 3.0),
        # Empty buckets are skipped: rank 1 of 2 is the end of the first non-empty bucket.
        ([0, 0, 2, 0], 0.5, None, 3.0),
        # q = 0 reads the lower edge of the first non-empty bucket.
        ([0, 3, 1, 0], 0.0, None, 1.0),
        # Overflow bucket: the last bound without a known maximum, the maximum with one.
        ([0, 0, 0, 4], 0.5, None, 4.0),
        ([0, 0, 0, 4], 0.5, 30.0, 30.0),
        # The estimate never exceeds the largest value actually seen.
        ([0, 0, 10, 0], 0.95, 2.5, 2.5),
        ([1, 1, 1, 1], 0.95, 9.0, 9.0),
    ],
)
def test_quantile_from_histogram__table(
    counts: list[int], q: float, maximum: float | None, expected: float | None
) -> None:
    assert quantile_from_histogram(BOUNDS, counts, q, maximum=maximum) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("bounds", "counts", "q", "message"),
    [
        (BOUNDS, [1, 1, 1], 0.5, "need 4 counts"),
        (BOUNDS, [1, 1, 1, 1], 1.5, "within 0…1"),
        (BOUNDS, [1, 1, 1, 1], -0.1, "within 0…1"),
        ((1.0, 1.0, 2.0), [1, 1, 1, 1], 0.5, "increase strictly"),
    ],
)
def test_quantile_from_histogram__rejects_bad_input(
    bounds: tuple[float, ...], counts: list[int], q: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        quantile_from_histogram(bounds, counts, q)


@pytest.mark.parametrize(
    ("value", "index"),
    [(0.0, 0), (1.0, 0), (1.000001, 1), (2.0, 1), (3.9, 2), (4.0, 2), (4.1, 3), (1e9, 3)],
)
def test_bucket_index__bounds_are_inclusive_upper_edges(value: float, index: int) -> None:
    assert bucket_index(BOUNDS, value) == index


def test_merge__adds_bucketwise_and_refuses_mismatched_shapes() -> None:
    assert merge([1, 2, 3], [10, 20, 30]) == [11, 22, 33]
    with pytest.raises(ValueError, match="cannot merge"):
        merge([1, 2], [1, 2, 3])


def test_cumulative__running_totals() -> None:
    assert cumulative([1, 0, 2, 3]) == [1, 1, 3, 6]


def test_duration_bounds__increase_and_leave_room_for_the_overflow_bucket() -> None:
    assert list(DURATION_BOUNDS) == sorted(set(DURATION_BOUNDS))
    assert len(empty_counts()) == len(DURATION_BOUNDS) + 1
