"""Prometheus exposition: parsed back with prometheus_client's own parser."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from queueprio.observability import rollup
from queueprio.observability.aggregate import Durations
from queueprio.observability.histogram import DURATION_BOUNDS
from queueprio.observability.prometheus import exposition, histogram_buckets
from tests.support.ledger import make_aging_step, make_job, make_rejection

pytestmark = pytest.mark.django_db


def scrape() -> dict[str, list[Sample]]:
    body, _ = exposition()
    return {family.name: family.samples for family in text_string_to_metric_families(body.decode())}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matches = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, f"{name}{labels}: {matches}"
    return matches[0]


def test_histogram_buckets__cumulative_and_ending_in_inf() -> None:
    durations = Durations()
    for seconds in (0.005, 0.2, 0.2, 7200.0):
        durations.observe(seconds)
    buckets = histogram_buckets(durations)
    assert len(buckets) == len(DURATION_BOUNDS) + 1
    assert buckets[0] == ("0.01", 1.0)
    assert buckets[-2] == ("3600.0", 3.0)
    assert buckets[-1] == ("+Inf", 4.0)


def test_scrape__gauges_are_live_from_the_ledger() -> None:
    now = timezone.now()
    make_job(queued_at=now - timedelta(seconds=90), priority=1)
    make_job(queued_at=now, priority=7, effective=6)
    metrics = scrape()
    assert value(metrics["queueprio_queued_jobs"], "queueprio_queued_jobs", priority="1") == 1
    assert value(metrics["queueprio_queued_jobs"], "queueprio_queued_jobs", priority="6") == 1
    assert value(metrics["queueprio_queued_jobs"], "queueprio_queued_jobs", priority="7") == 0
    oldest = value(metrics["queueprio_oldest_wait_seconds"], "queueprio_oldest_wait_seconds", band="urgent")
    assert 90 <= oldest < 150


def test_scrape__counter_drift_the_reconcile_corrected_is_a_counter() -> None:
    from queueprio.maintenance.reconcile import reconcile
    from queueprio.models import Band

    def corrections() -> float:
        samples = scrape()["queueprio_band_counter_corrections"]
        return value(samples, "queueprio_band_counter_corrections_total", band="normal")

    assert corrections() == 0
    # Given a counter that drifted from the ledger by three, when the reconcile corrects it
    Band.objects.filter(name="normal").update(queued=3)
    [drift] = reconcile()
    assert (drift.band, drift.counter, drift.ledger) == ("normal", 3, 0)
    # Then the scrape counts it, and a balanced reconcile adds nothing
    assert corrections() == 3
    assert reconcile() == []
    assert corrections() == 3


def test_scrape__counters_and_histograms_from_the_rolled_up_totals() -> None:
    # Given a minute with two jobs at priority 2 (waits 1 s and 20 s), a rejection and an aging step
    now = timezone.now()
    t = now.replace(second=0, microsecond=0) - timedelta(minutes=5)
    make_job(
        queued_at=t,
        priority=2,
        state="succeeded",
        started_at=t + timedelta(seconds=1),
        finished_at=t + timedelta(seconds=3),
    )
    make_job(
        queued_at=t,
        priority=2,
        state="failed",
        started_at=t + timedelta(seconds=20),
        finished_at=t + timedelta(seconds=21),
    )
    make_rejection(at=t, reason="queue_full", priority="2")
    make_rejection(at=t, reason="invalid_priority", priority="'x'")
    aged = make_job(queued_at=t - timedelta(minutes=10), priority=9, effective=8)
    make_aging_step(aged, at=t, from_priority=9, to_priority=8)
    # When the rollup has run
    rollup.rollup(now)
    metrics = scrape()
    # Then the counters carry task and priority (or reason) labels
    labels = {"task": "tests.record", "priority": "2"}
    assert value(metrics["queueprio_jobs_submitted"], "queueprio_jobs_submitted_total", **labels) == 2
    assert value(metrics["queueprio_jobs_started"], "queueprio_jobs_started_total", **labels) == 2
    finished = metrics["queueprio_jobs_finished"]
    assert value(finished, "queueprio_jobs_finished_total", outcome="succeeded", **labels) == 1
    assert value(finished, "queueprio_jobs_finished_total", outcome="failed", **labels) == 1
    rejections = metrics["queueprio_rejections"]
    assert value(rejections, "queueprio_rejections_total", task="tests.record", reason="queue_full") == 1
    assert value(rejections, "queueprio_rejections_total", task="tests.record", reason="invalid_priority") == 1
    assert value(metrics["queueprio_aging_steps"], "queueprio_aging_steps_total", priority="9") == 1
    # And the wait histogram per priority reads like any Prometheus histogram
    wait = metrics["queueprio_wait_seconds"]
    assert value(wait, "queueprio_wait_seconds_count", priority="2") == 2
    assert value(wait, "queueprio_wait_seconds_sum", priority="2") == pytest.approx(21.0)
    assert value(wait, "queueprio_wait_seconds_bucket", priority="2", le="1.0") == 1
    assert value(wait, "queueprio_wait_seconds_bucket", priority="2", le="30.0") == 2
    assert value(wait, "queueprio_wait_seconds_bucket", priority="2", le="+Inf") == 2
    assert "0" not in {s.labels.get("priority") for s in wait}  # rejections without a priority have no waits
    assert value(metrics["queueprio_run_seconds"], "queueprio_run_seconds_sum", priority="2") == pytest.approx(3.0)
    assert metrics["queueprio_metrics_rollup_timestamp_seconds"][0].value > t.timestamp()


def test_scrape__labels_are_registered_tasks_or_other(settings) -> None:
    # Given totals stored before rejections were counted as "other": a made-up name per refusal
    from queueprio.models import MetricTotal

    for i in range(3):
        MetricTotal.objects.create(
            task_name=f"made.up.{i}", priority=0, rejected=1, rejection_reasons={"unknown_task": 1}
        )
    MetricTotal.objects.create(task_name="made.up.9", priority=4, submitted=2)
    MetricTotal.objects.create(task_name="tests.record", priority=4, submitted=5)
    metrics = scrape()
    # Then the scrape has no made-up label: they are summed under "other"
    tasks = {s.labels["task"] for family in metrics.values() for s in family if "task" in s.labels}
    assert tasks == {"tests.record", "other"}
    rejected = metrics["queueprio_rejections"]
    assert value(rejected, "queueprio_rejections_total", task="other", reason="unknown_task") == 3
    submitted = metrics["queueprio_jobs_submitted"]
    assert value(submitted, "queueprio_jobs_submitted_total", task="other", priority="4") == 2
    assert value(submitted, "queueprio_jobs_submitted_total", task="tests.record", priority="4") == 5
