"""The metrics rollup (run by a beat task): roll closed minutes of the ledger up into ``MinuteStat``, sample, prune.

Nothing on the hot path writes metrics. Once a minute this reads what the ledger recorded
in the minutes since its watermark (submissions, starts, finishes, rejections, aging
steps), stores one row per minute × task × priority, adds the same to the lifetime totals,
moves the watermark, samples the queue depth and prunes old rows.

The watermark row is locked for each chunk (``select_for_update``; SQLite's IMMEDIATE
transactions take the write lock anyway), so two overlapping runs never count a minute twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from ..conf import settings
from ..models import (
    AgingReason,
    AgingStep,
    BandSample,
    DepthSample,
    Job,
    JobState,
    MetricTotal,
    MinuteStat,
    Rejection,
    TaskPriority,
)
from ..models import RollupWatermark as Watermark
from . import depth
from .aggregate import Accumulator, Stat, minute_floor, rejected_priority

logger = logging.getLogger("queueprio")

WATERMARK = "minute_stats"
#: Minutes handled per transaction, and at most per run (a long outage catches up over runs).
CHUNK = timedelta(hours=1)
MAX_PER_RUN = timedelta(days=1)
#: Where a first run starts: the last hour, so a fresh dashboard has something to show.
INITIAL_BACKFILL = timedelta(hours=1)
#: What the lifetime totals keep of a :class:`Stat` (no maxima: they'd never come down).
TOTAL_COLUMNS = [name for name in Stat().columns() if not name.endswith("_max")]
#: The task a rejection is counted under when it named no registered task: a caller's string
#: must not become a metric label (or a row) of its own, or the labels could grow without bound.
OTHER_TASK = "other"


def known_tasks() -> set[str]:
    """The registered queueprio tasks (their default-priority rows, seeded from the registry)."""
    return set(TaskPriority.objects.values_list("task_name", flat=True))


def task_label(name: str, known: set[str]) -> str:
    """``name`` if it is a registered task, else :data:`OTHER_TASK`."""
    return name if name in known else OTHER_TASK


def closed_until(now: datetime) -> datetime:
    """The end of the last minute old enough to roll up."""
    return minute_floor(now - timedelta(seconds=float(settings.METRICS_GRACE_SECONDS)))


def rollup(now: datetime) -> int:
    """Process every closed minute since the watermark (at most ``MAX_PER_RUN``); returns how many."""
    until = closed_until(now)
    mark, _ = Watermark.objects.get_or_create(name=WATERMARK, defaults={"processed_until": until - INITIAL_BACKFILL})
    start = mark.processed_until
    limit, done = min(until, start + MAX_PER_RUN), 0
    while start < limit:
        end = min(start + CHUNK, limit)
        with transaction.atomic():
            mark = Watermark.objects.select_for_update().get(name=WATERMARK)
            if mark.processed_until != start:  # another run got here first: carry on from its mark
                start = mark.processed_until
                continue
            store(collect(start, end), now)
            Watermark.objects.filter(pk=mark.pk).update(processed_until=end)
        done += int((end - start).total_seconds() // 60)
        start = end
    return done


def collect(start: datetime, end: datetime) -> Accumulator:
    """Everything the ledger recorded in ``[start, end)``, folded per minute × task × priority."""
    acc = Accumulator()
    jobs = Job.objects.order_by()
    for at, task, priority in jobs.filter(queued_at__gte=start, queued_at__lt=end).values_list(
        "queued_at", "task_name", "requested_priority"
    ):
        acc.submitted(at, task, priority)
    for started, task, priority, queued_at, eta in jobs.filter(started_at__gte=start, started_at__lt=end).values_list(
        "started_at", "task_name", "effective_priority", "queued_at", "eta"
    ):
        # Wait counts from when the job could run: a countdown is not queueing delay.
        if started is None:  # excluded by the filter; this tells the type checker
            continue
        acc.started(started, task, priority, eligible_at=max(queued_at, eta) if eta else queued_at)
    finished = jobs.filter(finished_at__gte=start, finished_at__lt=end, state__in=[JobState.SUCCEEDED, JobState.FAILED])
    for finished_at, task, priority, state, started_at in finished.values_list(
        "finished_at", "task_name", "effective_priority", "state", "started_at"
    ):
        if finished_at is None:  # excluded by the filter; this tells the type checker
            continue
        acc.finished(finished_at, task, priority, succeeded=state == JobState.SUCCEEDED, started_at=started_at)
    known = known_tasks()
    for at, task, requested, reason in (
        Rejection.objects.order_by()
        .filter(at__gte=start, at__lt=end)
        .values_list("at", "task_name", "requested_priority", "reason")
    ):
        acc.rejected(at, task_label(task, known), rejected_priority(requested), reason)
    steps = AgingStep.objects.order_by().filter(at__gte=start, at__lt=end, reason=AgingReason.AGING)
    for at, task, priority in steps.values_list("at", "job__task_name", "from_priority"):
        acc.aged(at, task, priority)
    return acc


def store(acc: Accumulator, now: datetime | None = None) -> None:
    """Insert the minute rows and add them to the lifetime totals (caller holds the watermark lock)."""
    now = now or timezone.now()
    MinuteStat.objects.bulk_create(
        [MinuteStat(minute=m, task_name=t, priority=p, **stat.columns()) for (m, t, p), stat in acc.stats.items()]
    )
    additions = acc.totals()
    if not additions:
        return
    existing = {
        (row.task_name, row.priority): row
        for row in MetricTotal.objects.filter(task_name__in={task for task, _ in additions})
    }
    changed, new = [], []
    for (task, priority), addition in additions.items():
        row = existing.get((task, priority))
        stat = Stat.from_columns(row) if row is not None else Stat()
        stat.add(addition)
        columns = {name: value for name, value in stat.columns().items() if name in TOTAL_COLUMNS}
        if row is None:
            new.append(MetricTotal(task_name=task, priority=priority, updated_at=now, **columns))
        else:
            for name, value in columns.items():
                setattr(row, name, value)
            row.updated_at = now
            changed.append(row)
    MetricTotal.objects.bulk_create(new)
    MetricTotal.objects.bulk_update(changed, [*TOTAL_COLUMNS, "updated_at"])


def prune(now: datetime) -> int:
    """Delete metrics rows past ``METRICS_RETENTION_DAYS``, in batches; returns how many.

    Lifetime totals go too once nothing has added to them for as long: a task gone from the
    code (or a name only rejections ever carried, before they were counted as ``other``)."""
    cutoff = now - timedelta(days=settings.METRICS_RETENTION_DAYS)
    return (
        delete_in_batches(MinuteStat.objects.filter(minute__lt=cutoff))
        + delete_in_batches(DepthSample.objects.filter(at__lt=cutoff))
        + delete_in_batches(BandSample.objects.filter(at__lt=cutoff))
        + delete_in_batches(MetricTotal.objects.filter(updated_at__lt=cutoff))
    )


def delete_in_batches(queryset: QuerySet[Any], *, batch_size: int | None = None) -> int:
    """Delete ``queryset`` a batch at a time, each in its own short transaction, so the
    tables stay writable for the workers while a large backlog of old rows goes."""
    size = batch_size or settings.PRUNE_BATCH_SIZE
    model: type[Model] = queryset.model
    deleted = 0
    while True:
        with transaction.atomic():
            pks = list(queryset.order_by().values_list("pk", flat=True)[:size])
            if not pks:
                return deleted
            deleted += model._default_manager.filter(pk__in=pks).delete()[0]


def run(now: datetime) -> dict[str, int]:
    """One beat run: roll up the closed minutes, sample the depth, prune old rows."""
    minutes = rollup(now)
    depth.sample(now)
    pruned = prune(now)
    logger.info("metrics rollup minutes=%s pruned=%s", minutes, pruned)
    return {"minutes": minutes, "pruned": pruned}
