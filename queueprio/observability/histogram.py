"""Fixed-bucket duration histograms: where a value goes, how to add them up, how to read a quantile."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import pairwise

#: Upper bounds (seconds, inclusive, like Prometheus ``le``) of the wait- and run-time
#: buckets; one more bucket past the last bound holds everything longer. Stored rows keep
#: only the counts, so changing these needs a data migration that re-buckets old rows.
DURATION_BOUNDS: tuple[float, ...] = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    15.0,
    30.0,
    45.0,
    60.0,
    90.0,
    120.0,
    180.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
)


def empty_counts(bounds: Sequence[float] = DURATION_BOUNDS) -> list[int]:
    return [0] * (len(bounds) + 1)


def bucket_index(bounds: Sequence[float], value: float) -> int:
    """The bucket ``value`` is counted in: the first bound it does not exceed, else the overflow."""
    return bisect_left(bounds, value)


def merge(left: Sequence[int], right: Sequence[int]) -> list[int]:
    if len(left) != len(right):
        raise ValueError(f"cannot merge histograms of {len(left)} and {len(right)} buckets")
    return [a + b for a, b in zip(left, right, strict=True)]


def cumulative(counts: Sequence[int]) -> list[int]:
    """Running totals, the shape Prometheus' ``_bucket{le=...}`` series want."""
    total, out = 0, []
    for count in counts:
        total += count
        out.append(total)
    return out


def quantile_from_histogram(
    bounds: Sequence[float], counts: Sequence[int], q: float, *, maximum: float | None = None
) -> float | None:
    """Estimate the ``q`` quantile (0…1) of the values counted in ``counts``.

    Like Prometheus' ``histogram_quantile``: find the bucket holding the rank ``q * total``
    and interpolate linearly inside it, the first bucket starting at 0. A rank that falls
    in the overflow bucket has no upper bound to interpolate to; it reads as ``maximum``
    when the largest observed value is known, else as the last bound (an underestimate).
    ``maximum`` also caps the estimate, which can never exceed what was observed.
    Returns ``None`` when nothing was counted.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within 0…1, got {q!r}")
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"{len(bounds)} bounds need {len(bounds) + 1} counts, got {len(counts)}")
    if any(b <= a for a, b in pairwise(bounds)):
        raise ValueError("bucket bounds must increase strictly")
    total = sum(counts)
    if total == 0:
        return None
    rank, below = q * total, 0
    for index, count in enumerate(counts):
        if count and below + count >= rank:
            return _interpolate(bounds, index, (rank - below) / count, maximum)
        below += count
    raise AssertionError("unreachable: the last non-empty bucket always reaches the rank")


def _interpolate(bounds: Sequence[float], index: int, fraction: float, maximum: float | None) -> float:
    if index == len(bounds):  # the overflow bucket
        return maximum if maximum is not None else float(bounds[-1])
    lower = 0.0 if index == 0 else float(bounds[index - 1])
    estimate = lower + (float(bounds[index]) - lower) * fraction
    return min(estimate, maximum) if maximum is not None else estimate


def quantile_bucket(bounds: Sequence[float], counts: Sequence[int], q: float) -> tuple[float, float | None] | None:
    """The bucket ``(lower, upper]`` the ``q`` quantile's rank falls in: where the true value lies.

    :func:`quantile_from_histogram` interpolates inside this bucket, so its error is at most the
    bucket's width. ``upper`` is ``None`` for the overflow bucket (no upper bound); ``None`` when
    nothing was counted.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank, below = q * total, 0
    for index, count in enumerate(counts):
        if count and below + count >= rank:
            lower = 0.0 if index == 0 else float(bounds[index - 1])
            return lower, float(bounds[index]) if index < len(bounds) else None
        below += count
    raise AssertionError("unreachable: the last non-empty bucket always reaches the rank")
