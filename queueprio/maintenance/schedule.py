"""queueprio's periodic tasks in django-celery-beat, so they are visible and editable in the admin."""

from __future__ import annotations

from typing import NamedTuple

from django.db import connections
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from ..conf import settings
from ..priority import MOST_URGENT, to_amqp


class Entry(NamedTuple):
    name: str
    task: str
    every_seconds: float
    description: str


def entries() -> list[Entry]:
    """The periodic tasks and their intervals, from settings (read when an entry is first created)."""
    return [
        Entry(
            "queueprio: aging sweep",
            "queueprio.age_waiting_jobs",
            settings.AGING_INTERVAL_SECONDS,
            "Republishes waiting jobs at a better priority so nothing starves (docs/aging.md).",
        ),
        Entry(
            "queueprio: roll up metrics",
            "queueprio.rollup_metrics",
            settings.METRICS_ROLLUP_INTERVAL_SECONDS,
            "Rolls the job ledger up into per-minute metrics, samples queue depth, prunes old metrics.",
        ),
        Entry(
            "queueprio: reconcile band counters",
            "queueprio.reconcile",
            settings.RECONCILE_INTERVAL_SECONDS,
            "Recomputes each band's queued counter from the ledger; logs and fixes any drift.",
        ),
        Entry(
            "queueprio: prune old rows",
            "queueprio.prune",
            3600,
            "Deletes finished jobs and rejections past their retention, in small batches.",
        ),
    ]


def ensure_periodic_task(entry: Entry, *, using: str = "default") -> bool:
    """Create the beat entry once; returns whether it was created.

    An existing entry is left exactly as it is, so an admin who disabled it or changed its
    interval keeps that choice across deploys.
    """
    if PeriodicTask.objects.using(using).filter(name=entry.name).exists():
        return False
    every = max(1, round(entry.every_seconds))
    interval, _ = IntervalSchedule.objects.using(using).get_or_create(every=every, period=IntervalSchedule.SECONDS)
    _, created = PeriodicTask.objects.using(using).get_or_create(
        name=entry.name,
        defaults={
            "task": entry.task,
            "interval": interval,
            # Housekeeping shares the priority queue with the jobs it serves: without the top
            # priority it would wait behind the very backlog it should age or measure.
            "priority": to_amqp(MOST_URGENT),
            # A run that waited several intervals is superseded by the next one.
            "expire_seconds": every * 3,
            "description": entry.description,
        },
    )
    return bool(created)


def ensure_all(using: str = "default") -> list[str]:
    """Create every missing entry (after ``migrate``); returns the names created."""
    if PeriodicTask._meta.db_table not in connections[using].introspection.table_names():
        return []  # `migrate queueprio` alone doesn't migrate django_celery_beat; the next full migrate will
    return [entry.name for entry in entries() if ensure_periodic_task(entry, using=using)]
