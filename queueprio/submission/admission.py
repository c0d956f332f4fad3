"""Admission control: per-band limits of queued jobs, and the quota on urgent submissions.

The band counter (``Band.queued``) is taken with one conditional ``UPDATE`` — ``queued + n <=
max_queued`` is checked and applied by the database in the same statement — so concurrent
submitters, threads or processes, can never push a band past its limit. The counter is taken in
the same transaction that inserts the ledger rows, and released when a job starts (in the claim's
transaction), fails to publish, or is cancelled. On PostgreSQL the row lock serialises the
statement; on SQLite the whole submission holds the database write lock (IMMEDIATE transactions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from ..exceptions import QueueFull, QuotaExceeded
from ..locks import serialise_on
from ..models import AgingReason, AgingStep, Band, Job, QuotaPolicy, UrgentQuota
from ..models.querysets import QuotaRow


@dataclass(frozen=True)
class Admission:
    """Where a job was admitted: its band (``None`` if no band covers its priority) and time limits."""

    band_id: int | None = None
    band: str = ""
    soft_time_limit: float | None = None
    time_limit: float | None = None
    #: With a ``max_running`` on the band: how many of the jobs just admitted may be published now
    #: (running slots not taken by running or already waiting jobs); the rest wait ``held``.
    #: ``None``: no limit.
    publishable: int | None = None

    @classmethod
    def of(cls, band: Band | None) -> Admission:
        if band is None:
            return cls()
        return cls(band.pk, band.name, band.soft_time_limit, band.time_limit)


def publishable(max_running: int | None, running: int, waiting_before: int) -> int | None:
    """Running slots left for newly admitted jobs: ``None`` without a limit (pure)."""
    if max_running is None:
        return None
    return max(0, max_running - running - waiting_before)


def band_for(priority: int) -> Band | None:
    return Band.objects.filter(most_urgent__lte=priority, least_urgent__gte=priority).first()


def timelimit_with_band(timelimit: list[float | None] | None, admitted: Admission) -> list[float | None]:
    """Celery's ``[hard, soft]`` header: the call's or the task's own limits, else the band's.

    A band's soft limit at or above the effective hard limit would never fire: it is left out.
    """
    hard, soft = timelimit or (None, None)
    hard = admitted.time_limit if hard is None else hard
    if soft is None and admitted.soft_time_limit is not None and (hard is None or admitted.soft_time_limit < hard):
        soft = admitted.soft_time_limit
    return [hard, soft]


def admit(priority: int, count: int = 1, *, partial: bool = False) -> tuple[Admission, int]:
    """Take ``count`` places in ``priority``'s band; returns the admission and how many fit.

    Raises :class:`QueueFull` when nothing fits, or when not everything fits and ``partial``
    is false (all-or-nothing).
    """
    taken = _take(priority, count)  # the common case: one statement, no read first
    if taken is not None:
        return taken, count
    band = band_for(priority)
    if band is None:
        return Admission(), count
    wanted = min(count - 1, max(0, (band.max_queued or 0) - band.queued)) if partial else 0
    while wanted > 0:
        taken = _take(priority, wanted)
        if taken is not None:
            return taken, wanted
        band.refresh_from_db(fields=["queued", "max_queued"])
        wanted = min(wanted - 1, max(0, (band.max_queued or 0) - band.queued))
    band.refresh_from_db(fields=["queued", "max_queued"])
    raise QueueFull(
        f"band {band.name!r} (priorities {band.most_urgent}–{band.least_urgent}) is full: "
        f"{band.queued} queued, limit {band.max_queued}" + (f", {count} more asked" if count > 1 else ""),
        band=band.name,
        limit=band.max_queued,
        depth=band.queued,
    )


def _take(priority: int, count: int) -> Admission | None:
    """Add ``count`` to the band's counter if the limit allows, in one statement; ``None`` if not.

    The database checks and applies the limit together, so concurrent submitters can't both
    take the last place. (``UPDATE … RETURNING``: PostgreSQL, and SQLite 3.35+.)
    """
    table = connection.ops.quote_name(Band._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET queued = queued + %s "  # noqa: S608  (the table name is ours)
            "WHERE most_urgent <= %s AND least_urgent >= %s AND (max_queued IS NULL OR queued + %s <= max_queued) "
            "RETURNING id, name, soft_time_limit, time_limit, max_running, running, queued",
            [count, priority, priority, count],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    band_id, name, soft, hard, max_running, running, queued = row
    return Admission(band_id, name, soft, hard, publishable(max_running, running, queued - count))


def counted(quota: QuotaRow | None, priority: int) -> bool:
    """Does ``quota`` count a submission at ``priority``?"""
    return quota is not None and quota[0] is not None and priority <= quota[1]


def quota_used(caller_key: str, max_priority: int, since: datetime) -> int:
    """What ``caller_key`` used of the urgent quota since ``since``: its urgent jobs submitted
    since, and its duplicates that raised a job to an urgent priority since (a ``dedup`` step by
    this caller), unless the raised job is one of its own counted already."""
    own = Q(caller_key=caller_key, requested_priority__lte=max_priority, queued_at__gte=since)
    jobs = Job.objects.filter(own).count()
    raises = (
        AgingStep.objects.filter(reason=AgingReason.DEDUP, caller_key=caller_key, at__gte=since)
        .filter(to_priority__lte=max_priority)
        .exclude(job__caller_key=caller_key, job__requested_priority__lte=max_priority, job__queued_at__gte=since)
        .count()
    )
    return jobs + raises


def apply_quota(
    priority: int, caller_key: str, count: int = 1, *, serialised: bool = False, quota: QuotaRow | None = None
) -> tuple[int, str | None]:
    """Check the urgent quota for ``caller_key``; returns the priority to use and a note if demoted.

    The quota applies only to submissions that name a caller (``caller_key=``): internal work
    is not throttled. Raises :class:`QuotaExceeded` under the ``reject`` policy.

    ``serialised``: called inside the transaction that will insert the job. Concurrent
    submissions of one caller then count one after the other, so together they never pass the
    limit (``locks.serialise_on`` the caller: on PostgreSQL an advisory lock; on SQLite the
    IMMEDIATE transaction already holds the write lock).
    ``quota``: the quota row, if the caller has read it already.
    """
    if not caller_key:
        return priority, None
    quota = quota or UrgentQuota.objects.current()
    if quota is None or not counted(quota, priority):
        return priority, None
    limit, max_priority, window, policy, demote_to = quota
    if limit is None:  # counted() said no already; this tells the type checker
        return priority, None
    if serialised:
        serialise_on(f"queueprio.quota:{caller_key}")
    since = timezone.now() - timedelta(seconds=window)
    used_count = quota_used(caller_key, max_priority, since)
    if used_count + count <= limit:
        return priority, None
    detail = (
        f"caller {caller_key!r} used {used_count} of {limit} submissions at priority ≤ {max_priority} "
        f"in the last {window}s"
    )
    if policy == QuotaPolicy.DEMOTE:
        return demote_to, f"{detail}; demoted from {priority} to {demote_to}"
    raise QuotaExceeded(f"urgent quota exceeded: {detail}", caller_key=caller_key, limit=limit)
