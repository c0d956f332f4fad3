"""Django's Tasks priorities onto queueprio's scale: pure, no Django.

Django: -100 (least urgent) … 100 (most urgent), default 0. queueprio: 1 (most urgent) … 10
(least urgent), default 5. Bands of 20, Django's default landing on queueprio's::

    Django    81…100  61…80  41…60  21…40  0…20  -20…-1  -40…-21  -60…-41  -80…-61  -100…-81
    queueprio    1       2      3      4     5      6        7        8        9        10

The 0…20 band is one wider than the rest so that 0 sits in the middle of the scale. A more
urgent Django priority never maps to a less urgent queueprio one.
"""

from __future__ import annotations

DJANGO_MIN_PRIORITY = -100
DJANGO_MAX_PRIORITY = 100
BAND = 20
#: queueprio's priority for Django's default (0) and for 1…20.
MIDDLE = 5


def to_queueprio(priority: int) -> int:
    """queueprio's priority (1…10) for a Django Tasks ``priority`` (-100…100)."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"a Django task priority is an int, not {type(priority).__name__}")
    if not DJANGO_MIN_PRIORITY <= priority <= DJANGO_MAX_PRIORITY:
        raise ValueError(f"a Django task priority is between {DJANGO_MIN_PRIORITY} and {DJANGO_MAX_PRIORITY}")
    if priority >= 0:
        # 0…20 → 5, 21…40 → 4, …, 81…100 → 1
        return MIDDLE - max(0, (priority - 1) // BAND)
    # -1…-20 → 6, …, -81…-100 → 10
    return MIDDLE + 1 + (-priority - 1) // BAND
