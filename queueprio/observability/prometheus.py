"""Prometheus exposition: a collector that reads the ledger and the rolled-up totals per scrape.

Counters and histograms come from ``MetricTotal`` (lifetime, never pruned, so they only
go up) and lag the ledger by the rollup interval plus its grace period;
``queueprio_metrics_rollup_timestamp_seconds`` says how far the rollup got. Gauges
(queued jobs, oldest wait, each band's waiting, held and running jobs) are read live from the
ledger and the band counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..models import MetricTotal, RollupWatermark
from . import depth, live
from .aggregate import Durations
from .histogram import DURATION_BOUNDS, cumulative
from .rollup import WATERMARK, known_tasks, task_label
from .window import merge_by


def histogram_buckets(durations: Durations) -> list[tuple[str, float]]:
    """Stored bucket counts as Prometheus' cumulative ``le`` buckets, ending with ``+Inf``."""
    running = cumulative(durations.buckets)
    buckets = [(_go_float(b), float(c)) for b, c in zip(DURATION_BOUNDS, running, strict=False)]
    return [*buckets, ("+Inf", float(running[-1]))]


def _go_float(value: float) -> str:
    """Prometheus' own text form of a bucket bound (``0.5``, ``1.0``, ``+Inf``)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]  # unannotated in prometheus_client


class QueueprioCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from self.live()
        yield from self.counters()
        yield from self.histograms()

    def live(self) -> Iterator[Metric]:
        now = timezone.now()
        queued = GaugeMetricFamily(
            "queueprio_queued_jobs",
            "Jobs queued in the ledger, by effective priority (1 = most urgent).",
            labels=["priority"],
        )
        for q in depth.by_priority(now):
            queued.add_metric([q.name], q.queued)
        yield queued
        oldest = GaugeMetricFamily(
            "queueprio_oldest_wait_seconds",
            "How long the oldest eligible queued job of each band has waited.",
            labels=["band"],
        )
        for band in depth.by_band(now):
            oldest.add_metric([band.name], band.oldest_wait(now) or 0.0)
        yield oldest
        yield from self.bands()
        mark = RollupWatermark.objects.filter(name=WATERMARK).values_list("processed_until", flat=True).first()
        if mark is not None:
            yield GaugeMetricFamily(
                "queueprio_metrics_rollup_timestamp_seconds",
                "End of the last minute the counters and histograms include (Unix time).",
                value=mark.timestamp(),
            )

    def bands(self) -> Iterator[Metric]:
        """Each band's counters now: waiting (queued and held), held, running, and its running limit."""
        families = {
            "queued": GaugeMetricFamily(
                "queueprio_band_waiting_jobs", "Jobs waiting in each band (queued and held).", labels=["band"]
            ),
            "held": GaugeMetricFamily(
                "queueprio_band_held_jobs",
                "Jobs held in the ledger: their band is at its running limit.",
                labels=["band"],
            ),
            "running": GaugeMetricFamily("queueprio_band_running_jobs", "Jobs running in each band.", labels=["band"]),
        }
        limit = GaugeMetricFamily(
            "queueprio_band_max_running",
            "Each limited band's running limit (bands without one are absent).",
            labels=["band"],
        )
        # Should stay 0: a rise means some path moved a job without its band's counter (alert on it).
        corrections = CounterMetricFamily(
            "queueprio_band_counter_corrections",
            "Drift the reconcile found in each band's counters and corrected (jobs).",
            labels=["band"],
        )
        for band in live.band_load():
            for name, family in families.items():
                family.add_metric([band.name], getattr(band, name))
            if band.max_running is not None:
                limit.add_metric([band.name], band.max_running)
            corrections.add_metric([band.name], band.corrections)
        yield from (*families.values(), limit, corrections)

    def counters(self) -> Iterator[Metric]:
        families = {
            "submitted": CounterMetricFamily(
                "queueprio_jobs_submitted", "Jobs submitted, by requested priority.", labels=["task", "priority"]
            ),
            "started": CounterMetricFamily(
                "queueprio_jobs_started", "Jobs started, by effective priority.", labels=["task", "priority"]
            ),
            "aged": CounterMetricFamily(
                "queueprio_aging_steps", "Aging steps, by the priority left.", labels=["task", "priority"]
            ),
        }
        finished = CounterMetricFamily(
            "queueprio_jobs_finished", "Jobs that ran to an outcome.", labels=["task", "priority", "outcome"]
        )
        rejections = CounterMetricFamily("queueprio_rejections", "Refused submissions.", labels=["task", "reason"])
        # Labels are registered task names or "other" (rows stored before rejections were counted
        # under "other" are folded into it here), so they can't grow with what callers send.
        known = known_tasks()
        by_reason: dict[tuple[str, str], int] = {}
        counts: dict[tuple[str, int], dict[str, int]] = {}
        for row in MetricTotal.objects.order_by("task_name", "priority"):
            task = task_label(row.task_name, known)
            for reason, count in (row.rejection_reasons or {}).items():
                by_reason[(task, reason)] = by_reason.get((task, reason), 0) + count
            if not row.priority:  # rejections without a valid priority: nothing else to count
                continue
            summed = counts.setdefault((task, row.priority), {})
            for name in (*families, "succeeded", "failed"):
                summed[name] = summed.get(name, 0) + getattr(row, name)
        for (task, priority), summed in sorted(counts.items()):
            labels = [task, str(priority)]
            for name, family in families.items():
                family.add_metric(labels, summed[name])
            finished.add_metric([*labels, "succeeded"], summed["succeeded"])
            finished.add_metric([*labels, "failed"], summed["failed"])
        for (task, reason), count in sorted(by_reason.items()):
            rejections.add_metric([task, reason], count)
        yield from (*families.values(), finished, rejections)

    def histograms(self) -> Iterator[Metric]:
        totals = {p: stat for p, stat in merge_by(MetricTotal.objects.all(), "priority").items() if p}
        for kind, what in (("wait", "from eligible to started"), ("run", "from started to finished")):
            family = HistogramMetricFamily(
                f"queueprio_{kind}_seconds", f"Job time {what}, by priority.", labels=["priority"]
            )
            for priority, stat in totals.items():
                durations: Durations = getattr(stat, kind)
                family.add_metric([str(priority)], histogram_buckets(durations), durations.total)
            yield family


@lru_cache(maxsize=1)
def registry() -> CollectorRegistry:
    # A private registry: the process-wide default one would add Python/GC metrics of
    # whichever web process answered, which say nothing about the queue.
    private = CollectorRegistry(auto_describe=False)
    private.register(QueueprioCollector())
    return private


def exposition() -> tuple[bytes, str]:
    """The scrape body and its content type."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST
