"""A fresh ledger row for a submission: its priority, its Celery options, when it may run."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..conf import settings
from ..models import Job, TaskPriority
from ..priority import next_aging_at
from ..registry import AnyTask, code_default

#: Celery options a job keeps so that a republished copy behaves like the first one.
KEPT_OPTIONS = ("link", "link_error", "shadow", "soft_time_limit", "time_limit", "expires", "queue", "ignore_result")


def resolve(task: AnyTask, explicit: int | None) -> tuple[int, str]:
    """The priority ``task`` runs at and where it came from (see ``TaskPriorityQuerySet.resolve``)."""
    return TaskPriority.objects.resolve(task.name, explicit, code_default=code_default(task))


def new_job(
    task: AnyTask,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    task_id: str,
    priority: int,
    source: str,
    options: dict[str, Any],
) -> Job:
    """An unsaved ledger row for a fresh submission (shared by ``submit`` and batches)."""
    now = timezone.now()
    eta = eta_from(options, now)
    return Job(
        task_id=task_id,
        task_name=task.name,
        args=args,
        kwargs=kwargs,
        options=storable_options(options),
        requested_priority=priority,
        effective_priority=priority,
        priority_source=source,
        eta=eta,
        queued_at=now,
        aging_since=eta or now,
        published_at=now,
        next_aging_at=next_aging_at(eta or now, threshold=settings.aging_threshold()),
    )


def eta_from(options: dict[str, Any], now: datetime) -> datetime | None:
    """Fold Celery's ``countdown``/``eta`` options into one absolute time (and drop them)."""
    countdown = options.pop("countdown", None)
    given = options.pop("eta", None)
    eta: datetime | None = parse_datetime(given) if isinstance(given, str) else given
    if countdown is not None:
        eta = now + timedelta(seconds=float(countdown))
    return eta


def storable_options(options: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe subset of ``options`` worth keeping for republishing."""
    kept: dict[str, Any] = {}
    for name in KEPT_OPTIONS:
        value = options.get(name)
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif name in ("link", "link_error"):
            value = [dict(sig) for sig in (value if isinstance(value, (list, tuple)) else [value])]
        elif not isinstance(value, (str, int, float, bool)):
            value = str(getattr(value, "name", value))  # a kombu Queue: keep its name
        kept[name] = value
    return kept
