"""The priority scale: 1 is the most urgent, 10 the least; and its one mapping onto AMQP."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from .exceptions import InvalidPriority

MOST_URGENT = 1
LEAST_URGENT = 10
DEFAULT_PRIORITY = 5
#: Stands for "no valid priority" where a row needs a number: a metrics row counting
#: rejections of a priority that was not on the scale.
NO_PRIORITY = 0

#: The ``x-max-priority`` every queueprio queue is declared with. Fixed, not a setting:
#: RabbitMQ refuses to redeclare a queue with another value (406 PRECONDITION_FAILED).
AMQP_MAX_PRIORITY = 10

#: The one AMQP priority used for every message when ``QUEUEPRIO_ENABLED`` is off (plain FIFO).
FIFO_AMQP_PRIORITY = 1


class Priority(IntEnum):
    """Named presets on the 1 (most urgent) … 10 (least urgent) scale."""

    CRITICAL = 1
    HIGH = 3
    NORMAL = 5
    LOW = 7
    BULK = 9


def validate_priority(value: Any) -> int:
    """Return ``value`` as a plain ``int`` on our scale, or raise :class:`InvalidPriority`.

    Only real integers are accepted: ``True`` is not 1, ``2.5`` is not rounded and ``"3"`` is
    not parsed, because a silently coerced priority is a bug report waiting to happen.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPriority(value)
    if not MOST_URGENT <= value <= LEAST_URGENT:
        raise InvalidPriority(value)
    return int(value)


def to_amqp(priority: int) -> int:
    """Map our scale onto AMQP priority for a queue declared with ``x-max-priority`` 10.

    The two scales run in opposite directions: RabbitMQ delivers the message with the
    *higher* AMQP priority first, while on our scale the *lower* number is more urgent.
    So our 1 (most urgent) becomes AMQP 10 and our 10 (least urgent) becomes AMQP 1.
    AMQP 0 is never used: it is what a message without any priority gets, and we keep it
    below everything we publish ourselves.
    """
    return AMQP_MAX_PRIORITY + 1 - validate_priority(priority)


def from_amqp(amqp_priority: int | None) -> int | None:
    """Inverse of :func:`to_amqp`; ``None`` for a message published without our mapping."""
    if amqp_priority is None or not 1 <= amqp_priority <= AMQP_MAX_PRIORITY:
        return None
    return AMQP_MAX_PRIORITY + 1 - amqp_priority


def resolve_priority(
    explicit: int | None,
    *,
    admin_default: int | None,
    code_default: int | None,
    global_default: int,
) -> int:
    """Apply the precedence, written once: per-call, then admin, then code, then global.

    Each step is an ``is None`` check, never truthiness, so no valid value is skipped.
    Only the explicit value comes from a caller; it is validated here. The others were
    validated where they were stored.
    """
    if explicit is not None:
        return validate_priority(explicit)
    if admin_default is not None:
        return admin_default
    if code_default is not None:
        return code_default
    return global_default


def aged_priority(requested: int, *, waited: float, threshold: float, boost: int, max_boost: int) -> int:
    """Effective priority after waiting ``waited`` seconds: one ``boost`` per full threshold.

    ``max(1, requested - min(k * boost, max_boost))`` with ``k = floor(waited / threshold)``.
    """
    if threshold <= 0 or waited < threshold:
        return requested
    steps = int(waited // threshold)
    return max(MOST_URGENT, requested - min(steps * boost, max_boost))


def next_aging_delay(requested: int, *, waited: float, threshold: float, boost: int, max_boost: int) -> float | None:
    """Seconds from now until the aged priority next improves; ``None`` if it never will."""
    if threshold <= 0 or boost <= 0:
        return None
    current = aged_priority(requested, waited=waited, threshold=threshold, boost=boost, max_boost=max_boost)
    floor = max(MOST_URGENT, requested - max_boost)
    if current <= floor:
        return None
    steps = int(waited // threshold) + 1
    return steps * threshold - waited


def next_aging_at(since: datetime, *, threshold: float | None) -> datetime | None:
    """When the aging sweep first looks at a job that became eligible to run at ``since``.

    One ``threshold`` later either its priority improves or, already at its floor, the sweep
    checks that it has not lost its message. ``None`` (aging off): never.
    """
    if threshold is None:
        return None
    return since + timedelta(seconds=threshold)
