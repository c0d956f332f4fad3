"""Refusals: every one is logged and stored as a ``Rejection`` row, then raised to the caller."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.utils import timezone

from ..exceptions import Rejected
from ..models import Rejection

logger = logging.getLogger("queueprio")


@contextmanager
def refusals_recorded(task_name: str, priority: Any, caller_key: str) -> Iterator[None]:
    """Store every refusal raised inside the block, then let it propagate."""
    try:
        yield
    except Rejected as exc:
        record_rejection(
            exc, task_name=task_name, priority=priority, caller_key=caller_key, band=exc.detail.get("band", "")
        )
        raise


def record_rejection(exc: Rejected, *, task_name: str, priority: Any, caller_key: str = "", band: str = "") -> None:
    """Store a refusal; it must never be silent."""
    logger.warning(
        "reject task=%s priority=%r reason=%s band=%s caller=%s detail=%r",
        task_name,
        priority,
        exc.reason,
        band,
        caller_key,
        str(exc),
    )
    Rejection.objects.create(
        at=timezone.now(),
        task_name=storable(task_name)[:200],
        requested_priority="" if priority is None else repr(priority)[:64],
        band=band,
        reason=exc.reason,
        detail=storable(str(exc)),
        caller_key=storable(caller_key)[:200],
    )


def storable(text: str) -> str:
    """``text`` with lone surrogates escaped (``\\ud800``): the database can't store them as they are.

    A refusal of a name like ``"\\ud800"`` must be stored like any other, not fail with a
    ``UnicodeEncodeError`` instead of the ``Rejected`` the caller is owed.
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
