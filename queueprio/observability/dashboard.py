"""What the admin dashboard shows: live depth, the last hour's waits, throughput, rejections, aging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..conf import settings
from ..models import RollupWatermark, TaskPriority
from . import depth, window
from .aggregate import Stat, minute_floor
from .charts import bar_chart, grouped_bar_chart, line_chart
from .rollup import WATERMARK
from .units import format_duration

WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class PriorityRow:
    priority: int
    started: int
    succeeded: int
    failed: int
    p50: str
    p95: str
    longest: str


def minute_series(stats: dict[datetime, Stat], since: datetime, until: datetime) -> list[tuple[str, float]]:
    """Jobs finished per minute from ``since`` to ``until``, missing minutes as zero."""
    points, minute = [], since
    while minute < until:
        stat = stats.get(minute)
        points.append((f"{minute:%H:%M}", float(stat.counts["succeeded"] + stat.counts["failed"]) if stat else 0.0))
        minute += timedelta(minutes=1)
    return points


def priority_rows(stats: dict[int, Stat]) -> list[PriorityRow]:
    rows = []
    for priority, stat in stats.items():
        if not priority:  # rejections without a valid priority have no waits or runs
            continue
        quantiles = window.wait_quantiles(stat)
        rows.append(
            PriorityRow(
                priority=priority,
                started=stat.counts["started"],
                succeeded=stat.counts["succeeded"],
                failed=stat.counts["failed"],
                p50=format_duration(quantiles[0.5]),
                p95=format_duration(quantiles[0.95]),
                longest=format_duration(stat.wait.maximum),
            )
        )
    return rows


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


def wait_series(hour: dict[int, Stat], priorities: list[str]) -> list[tuple[str, list[float | None]]]:
    """p50 and p95 wait per priority (``None`` where nothing started) for the grouped bar chart."""
    quantiles = {p: window.wait_quantiles(hour[int(p)]) if int(p) in hour else {} for p in priorities}
    return [(f"p{round(q * 100)}", [quantiles[p].get(q) for p in priorities]) for q in window.QUANTILES]


def hour_counts(hour: dict[int, Stat]) -> dict[str, int]:
    total = Stat()
    for stat in hour.values():
        total.add(stat)
    return {name: total.counts[name] for name in ("submitted", "started", "succeeded", "failed", "aged")}


def context(now: datetime) -> dict[str, Any]:
    """Template context of the dashboard at ``now``: live depth, the last hour rolled up, charts."""
    since = now - WINDOW
    rolled_until = RollupWatermark.objects.filter(name=WATERMARK).values_list("processed_until", flat=True).first()
    by_priority, by_band = depth.by_priority(now), depth.by_band(now)
    hour = window.by_priority(since)
    throughput = minute_series(window.by_minute(since), minute_floor(since), rolled_until or now)
    rejections = window.rejections_by_reason(since)
    return {
        "now": now,
        "rolled_until": rolled_until,
        "queued_total": sum(q.queued for q in by_priority),
        "depth_chart": bar_chart([(q.name, q.queued) for q in by_priority], title="Queued jobs by priority (now)"),
        "bands": [
            {"name": q.name, "queued": q.queued, "oldest_wait": format_duration(q.oldest_wait(now))} for q in by_band
        ],
        "wait_chart": grouped_bar_chart(
            [q.name for q in by_priority],
            wait_series(hour, [q.name for q in by_priority]),
            title="Wait by priority, last hour",
            unit=" s",
        ),
        "priority_rows": priority_rows(hour),
        "throughput_chart": line_chart(throughput, title="Jobs finished per minute, last hour"),
        "hour": hour_counts(hour),
        "rejections": rejections,
        "rejections_chart": bar_chart(rejections, title="Rejections by reason, last hour") if rejections else "",
        "aging_steps": [
            {**vars(step), "average_wait": format_duration(step.average_wait)} for step in window.aging_steps(since)
        ],
        "task_defaults": task_defaults(),
    }
