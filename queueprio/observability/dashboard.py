"""What the admin dashboard shows: live depth, band load, the jobs running and the next to start,
and over a chosen window (1 h, 6 h, 24 h) waits, throughput, depth by band over time, rejections,
aging steps and admin changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..conf import settings
from ..models import AgingReason, AgingStep, BandSample, RollupWatermark, TaskPriority
from . import depth, live, waits, window
from .aggregate import Stat, minute_floor
from .capacity import processes_by_queue
from .charts import Series, bar_chart, grouped_bar_chart, lines_chart
from .position import next_to_start
from .rollup import WATERMARK
from .units import format_duration


@dataclass(frozen=True)
class Range:
    key: str
    label: str
    span: timedelta
    #: Minutes per throughput point.
    step_minutes: int


RANGES = (
    Range("1h", "last hour", timedelta(hours=1), 1),
    Range("6h", "last 6 hours", timedelta(hours=6), 5),
    Range("24h", "last 24 hours", timedelta(hours=24), 15),
)
DEFAULT_RANGE = RANGES[0]
#: Most points a line chart draws; longer sample series are folded (each point the maximum of its group).
MAX_POINTS = 288
#: Admin changes listed on the page (the newest).
ADMIN_CHANGES_SHOWN = 10
#: Running jobs and next-to-start jobs listed on the page.
LIVE_SHOWN = 10


def parse_range(key: str | None) -> Range:
    """The range a ``?range=`` value names; the last hour for anything else."""
    return next((r for r in RANGES if r.key == key), DEFAULT_RANGE)


def minute_series(
    stats: dict[datetime, Stat], since: datetime, until: datetime, *, step_minutes: int = 1
) -> list[tuple[str, float]]:
    """Jobs finished per ``step_minutes`` from ``since`` to ``until``, missing minutes as zero."""
    points, start, step = [], since, timedelta(minutes=step_minutes)
    while start < until:
        total = 0
        for i in range(step_minutes):
            stat = stats.get(start + timedelta(minutes=i))
            total += stat.counts["succeeded"] + stat.counts["failed"] if stat else 0
        points.append((f"{start:%H:%M}", float(total)))
        start += step
    return points


def fold(values: Sequence[float | None], size: int) -> list[float | None]:
    """Groups of ``size`` consecutive values as their maximum (a spike stays visible)."""
    out: list[float | None] = []
    for i in range(0, len(values), size):
        group = [v for v in values[i : i + size] if v is not None]
        out.append(max(group) if group else None)
    return out


def band_depth_series(since: datetime, until: datetime) -> tuple[list[str], list[Series]]:
    """Queued jobs per band at each depth snapshot (the rollup's ``BandSample`` rows) in the window."""
    rows = BandSample.objects.filter(at__gte=since, at__lte=until).order_by("at").values_list("at", "band", "queued")
    times: list[datetime] = []
    by_band: dict[str, dict[datetime, int]] = {name: {} for name, _, _ in depth.band_ranges()}
    for at, band, queued in rows:
        if not times or times[-1] != at:
            times.append(at)
        by_band.setdefault(band, {})[at] = queued
    size = max(1, -(-len(times) // MAX_POINTS))  # ceiling division
    labels = [f"{at:%H:%M}" for at in times[::size]]
    series: list[Series] = [
        (band, fold([float(v) if (v := counts.get(at)) is not None else None for at in times], size))
        for band, counts in by_band.items()
    ]
    return labels, series


def task_defaults() -> list[dict[str, Any]]:
    """Every task's default priorities, as the admin edits them, and the one that applies."""
    return [
        {
            "task_name": row.task_name,
            "code_default": row.code_default,
            "override": row.priority,
            "effective": next(p for p in (row.priority, row.code_default, settings.DEFAULT_PRIORITY) if p is not None),
        }
        for row in TaskPriority.objects.order_by("task_name")
    ]


def wait_series(rows: Sequence[waits.PriorityWaits], priorities: list[str]) -> list[Series]:
    """p50 and p95 wait per priority (``None`` where nothing started) for the grouped bar chart."""
    found = {str(row.priority): row for row in rows}
    return [
        (f"p{round(q * 100)}", [found[p].quantiles[q].value if p in found else None for p in priorities])
        for q in window.QUANTILES
    ]


def window_counts(stats: dict[int, Stat]) -> dict[str, int]:
    total = Stat()
    for stat in stats.values():
        total.add(stat)
    return {name: total.counts[name] for name in ("submitted", "started", "succeeded", "failed", "aged")}


def admin_changes(since: datetime) -> tuple[int, list[dict[str, Any]]]:
    """Priority changes made in the admin since ``since``: how many, and the newest ones."""
    changes = AgingStep.objects.filter(at__gte=since, reason=AgingReason.ADMIN)
    newest = changes.select_related("job").order_by("-at", "-pk")[:ADMIN_CHANGES_SHOWN]
    return changes.count(), [
        {
            "at": step.at,
            "who": step.changed_by or "–",
            "task_id": step.job.task_id,
            "job_pk": step.job_id,
            "task_name": step.job.task_name,
            "from_priority": step.from_priority,
            "to_priority": step.to_priority,
        }
        for step in newest
    ]


def bands_now(now: datetime, by_band: Sequence[depth.Queued]) -> list[dict[str, Any]]:
    """Each band's waiting, held and running jobs against its limits, and its oldest wait."""
    oldest = {q.name: format_duration(q.oldest_wait(now)) for q in by_band}
    return [
        {**vars(band), "oldest_wait": oldest.get(band.name, "–"), "at_limit": _at_limit(band)}
        for band in live.band_load()
    ]


def _at_limit(band: live.BandLoad) -> bool:
    return band.max_running is not None and band.running >= band.max_running


def running_now(now: datetime) -> list[dict[str, Any]]:
    return [
        {
            **vars(job),
            "elapsed": format_duration(job.elapsed(now)),
            "percent": None if job.progress is None else round(job.progress * 100),
        }
        for job in live.running(LIVE_SHOWN)
    ]


def next_jobs(now: datetime) -> tuple[list[dict[str, Any]], bool]:
    """The next jobs to start with their expected start, and whether any worker answered."""
    try:
        workers = processes_by_queue()
    except Exception:  # the broker is away: positions without estimates
        workers = {}
    rows = [
        {
            "pk": n.job.pk,
            "task_id": n.job.task_id,
            "task_name": n.job.task_name,
            "priority": n.job.effective_priority,
            "position": n.position,
            "starts_in": None
            if n.expected_start is None
            else format_duration(max(0.0, (n.expected_start - now).total_seconds())),
        }
        for n in next_to_start(now, limit=LIVE_SHOWN, workers_by_queue=workers)
    ]
    return rows, bool(workers)


def context(now: datetime, span: Range = DEFAULT_RANGE) -> dict[str, Any]:
    """Template context of the dashboard at ``now`` over ``span``: live depth, the window's figures, charts."""
    since = now - span.span
    rolled_until = RollupWatermark.objects.filter(name=WATERMARK).values_list("processed_until", flat=True).first()
    by_priority, by_band = depth.by_priority(now), depth.by_band(now)
    rolled = window.by_priority(since)
    wait = waits.waits(since, now)
    throughput = minute_series(
        window.by_minute(since), minute_floor(since), rolled_until or now, step_minutes=span.step_minutes
    )
    rejections = window.rejections_by_reason(since)
    band_labels, band_series = band_depth_series(since, now)
    admin_count, admin_newest = admin_changes(since)
    upcoming, answered = next_jobs(now)
    per = "minute" if span.step_minutes == 1 else f"{span.step_minutes} minutes"
    return {
        "now": now,
        "range": span,
        "ranges": RANGES,
        "rolled_until": rolled_until,
        "queued_total": sum(q.queued for q in by_priority),
        "depth_chart": bar_chart(
            [(q.name, q.queued) for q in by_priority], title="Queued jobs by priority (now)", integer=True
        ),
        "bands": bands_now(now, by_band),
        "running_jobs": running_now(now),
        "next_jobs": upcoming,
        "workers_answered": answered,
        "band_depth_chart": lines_chart(
            band_labels, band_series, title=f"Queued jobs by band, {span.label}", integer=True, width=1000
        ),
        "wait_chart": grouped_bar_chart(
            [q.name for q in by_priority],
            wait_series(wait.rows, [q.name for q in by_priority]),
            title=f"Wait by priority, {span.label}",
            unit=" s",
        ),
        "waits": wait,
        "throughput_chart": lines_chart(
            [label for label, _ in throughput],
            [("", [value for _, value in throughput])],
            title=f"Jobs finished per {per}, {span.label}",
            integer=True,
        ),
        "counts": {**window_counts(rolled), "admin_changes": admin_count},
        "rejections": rejections,
        "rejections_chart": (
            bar_chart(rejections, title=f"Rejections by reason, {span.label}", integer=True) if rejections else ""
        ),
        "aging_steps": [
            {**vars(step), "average_wait": format_duration(step.average_wait)}
            for step in window.aging_steps(since)
            if step.reason != AgingReason.ADMIN
        ],
        "admin_changes": admin_newest,
        "task_defaults": task_defaults(),
    }
