"""Django's Tasks priority (-100…100, larger more urgent) onto queueprio's 1…10: the documented table."""

from __future__ import annotations

import itertools

import pytest

from queueprio.taskbridge.mapping import to_queueprio


@pytest.mark.parametrize(
    ("django", "queueprio"),
    [
        (100, 1),
        (81, 1),
        (80, 2),
        (61, 2),
        (60, 3),
        (41, 3),
        (40, 4),
        (21, 4),
        (20, 5),
        (1, 5),
        (0, 5),  # Django's default is queueprio's
        (-1, 6),
        (-20, 6),
        (-21, 7),
        (-40, 7),
        (-41, 8),
        (-60, 8),
        (-61, 9),
        (-80, 9),
        (-81, 10),
        (-100, 10),
    ],
)
def test_mapping__table(django: int, queueprio: int) -> None:
    assert to_queueprio(django) == queueprio


def test_mapping__more_urgent_never_maps_less_urgent_and_every_level_is_used() -> None:
    mapped = [to_queueprio(p) for p in range(-100, 101)]
    assert all(a >= b for a, b in itertools.pairwise(mapped))
    assert set(mapped) == set(range(1, 11))
    # Bands of 20, the one holding Django's default one wider.
    assert sorted(mapped.count(level) for level in range(1, 11)) == [20] * 9 + [21]


@pytest.mark.parametrize(
    ("value", "error"), [(101, ValueError), (-101, ValueError), (2.5, TypeError), (True, TypeError)]
)
def test_mapping__refuses_what_django_refuses(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        to_queueprio(value)  # type: ignore[arg-type]
