"""The scale, its validation, the AMQP mapping, the precedence and the aging rule: pure logic."""

from __future__ import annotations

import pytest

from queueprio import InvalidPriority, Priority, Rejected, to_amqp, validate_priority
from queueprio.priority import aged_priority, from_amqp, next_aging_delay, resolve_priority


@pytest.mark.parametrize(
    ("ours", "amqp"),
    [(1, 10), (2, 9), (3, 8), (4, 7), (5, 6), (6, 5), (7, 4), (8, 3), (9, 2), (10, 1)],
)
def test_to_amqp__most_urgent_gets_highest_amqp(ours: int, amqp: int) -> None:
    assert to_amqp(ours) == amqp
    assert from_amqp(amqp) == ours


def test_to_amqp__order_is_reversed_over_the_whole_scale() -> None:
    mapped = [to_amqp(p) for p in range(1, 11)]
    assert mapped == sorted(mapped, reverse=True)
    assert len(set(mapped)) == 10


@pytest.mark.parametrize("value", [None, 0, 11, -1, 2.5, 3.0, "3", True, False, b"1", [1], 10**20])
def test_validate_priority__rejects_anything_but_an_int_in_range(value: object) -> None:
    with pytest.raises(InvalidPriority) as info:
        validate_priority(value)
    assert repr(value) in str(info.value)
    assert "1 (most urgent) to 10 (least urgent)" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, Rejected)


def test_validate_priority__accepts_presets_as_plain_ints() -> None:
    assert [validate_priority(p) for p in Priority] == [1, 3, 5, 7, 9]
    assert type(validate_priority(Priority.HIGH)) is int


@pytest.mark.parametrize(
    ("explicit", "admin", "code", "expected"),
    [
        (1, 4, 7, 1),  # per-call wins
        (None, 4, 7, 4),  # then the admin's default
        (None, None, 7, 7),  # then the code default
        (None, None, None, 5),  # then the global default
        (10, 1, 1, 10),  # an explicit value wins even when less urgent
    ],
)
def test_resolve_priority__precedence(explicit: int | None, admin: int | None, code: int | None, expected: int) -> None:
    assert resolve_priority(explicit, admin_default=admin, code_default=code, global_default=5) == expected


def test_resolve_priority__validates_the_explicit_value() -> None:
    with pytest.raises(InvalidPriority):
        resolve_priority(0, admin_default=3, code_default=3, global_default=5)


@pytest.mark.parametrize(
    ("requested", "waited", "expected"),
    [
        (10, 0, 10),
        (10, 299.9, 10),
        (10, 300, 9),
        (10, 900, 7),
        (10, 1200, 6),  # max_boost 4 reached
        (10, 10_000, 6),  # and never more
        (3, 600, 1),
        (2, 10_000, 1),  # floor at 1
        (1, 10_000, 1),
    ],
)
def test_aged_priority__one_level_per_threshold_capped(requested: int, waited: float, expected: int) -> None:
    assert aged_priority(requested, waited=waited, threshold=300, boost=1, max_boost=4) == expected


@pytest.mark.parametrize(
    ("requested", "waited", "expected"),
    [(10, 0, 300), (10, 450, 150), (10, 1200, None), (1, 0, None), (2, 0, 300), (2, 300, None)],
)
def test_next_aging_delay__until_the_next_improvement(requested: int, waited: float, expected: float | None) -> None:
    assert next_aging_delay(requested, waited=waited, threshold=300, boost=1, max_boost=4) == expected
